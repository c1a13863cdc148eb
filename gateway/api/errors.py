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
    _refuse_nul(raw)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        field, message = _field(exc)
        raise ApiError(400, "invalid", message, field=field) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``, or a 400 naming the offending parameter."""
    query = dict(request.query)
    _refuse_nul(query)
    try:
        return model.model_validate(query)
    except ValidationError as exc:
        field, message = _field(exc)
        raise ApiError(400, "invalid", message, field=field) from None


def _refuse_nul(raw: Any) -> None:
    """A 400 naming the first field holding a NUL character: PostgreSQL's text cannot store
    one (the insert failed, a 500), and no one types it."""
    where = _nul_in(raw, "")
    if where is not None:
        raise ApiError(400, "invalid", "a NUL character is not allowed", field=where or None)


def _nul_in(value: Any, path: str) -> str | None:
    """The dotted path of the first string in ``value`` holding a NUL ("" for ``value``)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _nul_in(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def respond(model: BaseModel, *, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )
