"""The JSON API's machinery: request validation, responses, and the OpenAPI 3.1 document.

Each domain declares its API routes on its own blueprint with `operation`; the document at
`/api/v1/openapi.json` is built from the application's URL map, so it lists exactly the routes
that exist.
"""

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from pydantic import BaseModel, TypeAdapter, ValidationError

from trials.core.errors import InvalidInput, field_errors
from trials.core.security import MAX_PATH_NUMBER

_CONVERTER = re.compile(r"<(?:(\w+):)?(\w+)>")
_PARAM_SCHEMAS = {
    "uuid": {"type": "string", "format": "uuid"},
    "int": {"type": "integer", "minimum": 0, "maximum": MAX_PATH_NUMBER},
}

API_PREFIX = "/api/v1"
API_VERSION = "1.0.0"

_ERROR_STATUSES = {
    "400": "Malformed request",
    "401": "Missing, unknown, expired or revoked API token",
    "403": "The token's user lacks the permission",
    "404": "Not found",
    "409": "Conflict with the current state",
    "413": "The request body is larger than the server accepts",
    "422": "Invalid input; `errors` names each field and rule",
}


def parse_body(model: type[BaseModel]) -> Any:
    """The request's JSON body validated by `model`, or InvalidInput naming each field."""
    try:
        payload = request.get_json(silent=True)
    except RecursionError:
        payload = None
    if not isinstance(payload, dict):
        raise InvalidInput.field(
            "body", "json_object", "body: must be a JSON object (Content-Type: application/json)"
        )
    if "\\u0000" in request.get_data(as_text=True):
        raise InvalidInput.field("body", "control_character", "body: must not contain a NUL character")
    try:
        # JSON-mode validation: no string is coerced to a number or a boolean. SQLModel bodies
        # validate field by field, so an enum, date or UUID field of a strict body needs
        # `Strict(False)` to be read from its JSON string (see GrantCreate.role).
        return model.model_validate_json(request.get_data())
    except RecursionError:
        raise InvalidInput.field("body", "too_deep", "body: nested too deeply") from None
    except ValidationError as exc:
        raise InvalidInput("the request body is not valid", errors=field_errors(exc)) from None


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def operation(
    blueprint: Blueprint,
    rule: str,
    *,
    method: str = "GET",
    summary: str,
    tag: str,
    body: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (401, 403),
    query: dict[str, str] | None = None,
    public: bool = False,
    request_content: dict[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API route: validates the body into `body=`, serializes the return value.

    `request_content` documents a body the view reads itself (a CSV upload): OpenAPI media
    types to their schemas.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(**kwargs: Any) -> Any:
            if body is not None:
                kwargs["body"] = parse_body(body)
            result = view(**kwargs)
            if status == 204:
                return "", 204
            if isinstance(result, Response):  # a download: the view chose its own media type
                return result
            out = jsonify(_dump(result))
            out.status_code = status
            return out

        wrapper._openapi = {  # type: ignore[attr-defined]
            "method": method.lower(),
            "summary": summary,
            "tag": tag,
            "body": body,
            "response": response,
            "status": status,
            "errors": errors,
            "query": query or {},
            "public": public,
            "operation_id": view.__name__,
            "request_content": request_content,
        }
        blueprint.add_url_rule(rule, view_func=wrapper, methods=[method])
        return wrapper

    return decorator


def _schema(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    if isinstance(model, type) and issubclass(model, BaseModel):
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}
    return schema


def openapi_document(app: Flask) -> dict[str, Any]:
    components: dict[str, Any] = {
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "rule", "message"],
                        "properties": {
                            "field": {"type": "string"},
                            "rule": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    }
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        meta = getattr(app.view_functions.get(rule.endpoint), "_openapi", None)
        if meta is None:
            continue
        path = _CONVERTER.sub(r"{\2}", rule.rule)
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": _PARAM_SCHEMAS.get(conv or "", {"type": "string"}),
            }
            for conv, name in _CONVERTER.findall(rule.rule)
        ] + [
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": text,
            }
            for name, text in meta["query"].items()
        ]
        op: dict[str, Any] = {
            "operationId": meta["operation_id"],
            "summary": meta["summary"],
            "tags": [meta["tag"]],
            "parameters": parameters,
            "responses": {},
        }
        if meta["body"] is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(meta["body"], components)}},
            }
        elif meta["request_content"] is not None:
            op["requestBody"] = {"required": True, "content": meta["request_content"]}
        ok: dict[str, Any] = {"description": "Success"}
        if meta["response"] is not None:
            ok["content"] = {"application/json": {"schema": _schema(meta["response"], components)}}
        op["responses"][str(meta["status"])] = ok
        # Any request may be refused as invalid: a NUL byte in its path, query or form is refused
        # before any view (trials.core.security), as is a body its schema refuses.
        statuses = set(meta["errors"]) | {422}
        if meta["public"]:
            op["security"] = []
            statuses.discard(401)
            statuses.discard(403)
        for code in sorted(statuses):
            op["responses"][str(code)] = {
                "description": _ERROR_STATUSES[str(code)],
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        paths.setdefault(path, {})[meta["method"]] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trials API",
            "version": API_VERSION,
            "description": "Personal API tokens (`Authorization: Bearer trl_...`) act with their "
            "user's current rights; read-scoped tokens only read. Errors are "
            "application/problem+json with field-level details.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerToken": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerToken": {"type": "http", "scheme": "bearer"}},
        },
    }


bp = Blueprint("api", __name__, url_prefix=API_PREFIX)


@operation(bp, "/openapi.json", summary="This OpenAPI document", tag="meta", public=True, errors=())
def openapi_json() -> Any:
    return openapi_document(current_app._get_current_object())  # type: ignore[attr-defined]
