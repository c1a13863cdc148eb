"""``/survey/<signed token>``: the emailed satisfaction survey.

GET shows the form and records nothing (mail scanners follow links); POST records the rating.
A forged or expired token (14 days by default) gets 403.
"""

from __future__ import annotations

import html

from aiohttp import web

from gateway.appkeys import SETTINGS, STORE
from gateway.store.tables import Ticket
from gateway.store.types import utcnow
from gateway.surveys import SurveyError, read_survey_token, record_rating

routes = web.RouteTableDef()

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>满意度评价 / Rate our service</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 2rem auto">
{body}
</body></html>"""

_FORM = """<h1>满意度评价 / How did we do?</h1>
<p>工单 / Ticket {number}</p>
<form method="post">
  <fieldset><legend>评分 / Score</legend>
  {stars}
  </fieldset>
  <p><label>意见 / Comment<br><textarea name="comment" rows="4" cols="40"></textarea></label></p>
  <button type="submit">提交 / Send</button>
</form>"""


def _ticket_id(request: web.Request) -> int:
    settings = request.app[SETTINGS]
    secret = settings.secret_key.get_secret_value() if settings.secret_key else ""
    ticket_id = read_survey_token(secret, request.match_info["token"], utcnow())
    if ticket_id is None:
        raise web.HTTPForbidden(text="This survey link is invalid or has expired.")
    return ticket_id


@routes.get("/survey/{token}")
async def survey_form(request: web.Request) -> web.Response:
    ticket_id = _ticket_id(request)
    async with request.app[STORE].read() as session:
        ticket = await session.get(Ticket, ticket_id)
        if ticket is None:
            raise web.HTTPForbidden(text="This survey link is invalid or has expired.")
        number = ticket.number
    stars = "\n  ".join(
        f'<label><input type="radio" name="score" value="{n}" required> {n} ★</label>'
        for n in range(1, 6)
    )
    body = _FORM.format(number=html.escape(number), stars=stars)
    return web.Response(text=_PAGE.format(body=body), content_type="text/html")


@routes.post("/survey/{token}")
async def survey_answer(request: web.Request) -> web.Response:
    ticket_id = _ticket_id(request)
    form = await request.post()
    try:
        score = int(str(form.get("score", "")))
    except ValueError:
        raise web.HTTPBadRequest(text="Choose a score from 1 to 5.") from None
    comment = str(form.get("comment", "")).strip()[:2000] or None
    try:
        async with request.app[STORE].write() as session:
            ticket = await session.get(Ticket, ticket_id, with_for_update=True)
            if ticket is None:
                raise web.HTTPForbidden(text="This survey link is invalid or has expired.")
            await record_rating(session, ticket, score, comment, utcnow())
    except SurveyError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    body = "<h1>谢谢！/ Thank you!</h1><p>您的评价已收到。/ We have your rating.</p>"
    return web.Response(text=_PAGE.format(body=body), content_type="text/html")
