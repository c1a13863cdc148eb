"""The OpenAPI 3.1 document of the agent API, generated from the declared endpoints' models."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway import __version__
from gateway.api.endpoints import ApiTable, Endpoint
from gateway.models import AgentRole

_REF = "#/components/schemas/{model}"
_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "field": {"type": ["string", "null"]},
    },
}


def build_document(endpoints: list[Endpoint]) -> dict[str, Any]:
    """The document for ``endpoints``."""
    models: list[tuple[type[BaseModel], Any]] = []
    for ep in endpoints:
        if ep.body:
            models.append((ep.body, "validation"))
        if ep.response:
            models.append((ep.response, "serialization"))
    keys, defs = models_json_schema(models, ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        operation: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": f"{ep.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', ep.path.lower())}",
            "parameters": _parameters(ep),
            "responses": _responses(ep, keys),
        }
        if ep.body:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": keys[(ep.body, "validation")]}},
            }
        if ep.upload:
            part = {"type": "string", "format": "binary"}
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": [ep.upload],
                            "properties": {ep.upload: part},
                        }
                    }
                },
            }
        if ep.role is not None:
            operation["security"] = [{"session": []}, {"bearer": []}]
            operation["x-role"] = ep.role.value
        paths.setdefault(ep.path, {})[ep.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Support gateway agent API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "gw_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", ep.path)
    ]
    if ep.query is not None:
        schema = ep.query.model_json_schema(ref_template=_REF)
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": False, "schema": _inline(prop, schema)}
            )
    return parameters


def _inline(prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Query parameters are flat: resolve ``$ref``s to the enum they point at."""
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(prop)
    return resolved


def _responses(ep: Endpoint, keys: dict[Any, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {
        "400": {"description": "A field is invalid (named in `field`)", **error},
        "404": {"description": "Not found", **error},
        "409": {"description": "Conflict", **error},
    }
    if ep.response is not None:
        responses[str(ep.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": keys[(ep.response, "serialization")]}},
        }
    else:
        responses[str(ep.status)] = {"description": "OK (a file or a document)"}
    if ep.upload:
        responses["413"] = {"description": "The file is over the limit", **error}
    if ep.role is not None:
        responses["401"] = {"description": "No session or token", **error}
        responses["403"] = {"description": "Role too low, or no CSRF token", **error}
    else:
        responses["401"] = {"description": "Wrong credentials", **error}
        responses["429"] = {"description": "Too many attempts", **error}
    return responses


def openapi_routes(tables: list[ApiTable]) -> ApiTable:
    """A table serving ``GET /api/v1/openapi.json`` for the endpoints of ``tables`` (and itself)."""
    api = ApiTable()

    @api.route(
        "GET",
        "/api/v1/openapi.json",
        summary="This API's OpenAPI 3.1 document",
        role=AgentRole.AGENT,
    )
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    document = build_document([ep for table in [*tables, api] for ep in table.endpoints])
    return api
