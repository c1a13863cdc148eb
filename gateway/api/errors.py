"""API errors: an HTTP status and a JSON body ``{"error", "detail", "field"}``."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ApiError(web.HTTPException):
    """Raise it from a handler: ``raise ApiError(404, "not_found", "no ticket G...")``."""

    def __init__(self, status: int, error: str, detail: str, *, field: str | None = None) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": error, "detail": detail, "field": field}),
            content_type="application/json",
        )


def _field(exc: ValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    return field, first["msg"]


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The JSON body as ``model``, or a 400 naming the offending field."""
    try:
        raw: Any = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        field, message = _field(exc)
        raise ApiError(400, "invalid", message, field=field) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``, or a 400 naming the offending parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        field, message = _field(exc)
        raise ApiError(400, "invalid", message, field=field) from None


def respond(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )
