"""The OpenAPI 3.1 document, generated from the routes and the same pydantic models that
validate requests and shape responses. Served at ``GET /openapi.json``; checked in as
``docs/openapi.json`` (a test fails when the checked-in copy is stale)."""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import Any, Optional

from pydantic import BaseModel, Field, create_model
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..domain.base import DomainModel
from .http import OPERATIONS

ERROR_STATUSES = {400: "Invalid input", 401: "Missing or invalid API key", 403: "The key lacks the right",
                  404: "Not found (or not visible to this key)", 409: "Conflict: wrong state, lost race, stale version",
                  413: "Body over 256 KB", 422: "Rule violation"}


class ErrorDetail(DomainModel):
    code: str
    message: str
    details: list[Any] = Field(default_factory=list)


class ErrorBody(DomainModel):
    error: ErrorDetail


QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    "cursor": {"type": "string", "maxLength": 2048},
    "after": {"type": "integer", "minimum": 0},
    "stage": {"type": "string", "enum": ["none", "dev", "qa", "sec", "docs", "cicd", "complete"]},
    "status": {"type": "string", "enum": ["queued", "in_progress", "done", "failed", "cancelled"]},
    "type": {"type": "string", "enum": ["screenshot", "log", "report", "test_result", "code_diff", "other"]},
    "run_id": {"type": "string", "maxLength": 64},
    "task_id": {"type": "string", "maxLength": 64},
}

_list_models: dict[str, type[BaseModel]] = {}


def list_model(item: type[BaseModel]) -> type[BaseModel]:
    name = f"{item.__name__}List"
    if name not in _list_models:
        _list_models[name] = create_model(name, items=(list[item], ...),  # type: ignore[valid-type]
                                          next_cursor=(Optional[str], None))
    return _list_models[name]


def build_document(app: Any) -> dict[str, Any]:
    operations = []
    for path, methods in sorted(app.routes.items()):
        for method in sorted(methods):
            operation = OPERATIONS.get((method.upper(), path))
            if operation is not None:
                operations.append(operation)
    models: list[tuple[type[BaseModel], str]] = [(ErrorBody, "serialization")]
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        if op.response is not None:
            response = list_model(op.response) if op.lists else op.response
            models.append((response, "serialization"))
    keys, schema = models_json_schema(models, ref_template="#/components/schemas/{model}")
    components = schema.get("$defs", {})

    def ref(model: Any, mode: str) -> dict[str, Any]:
        return keys[(model, mode)]

    paths: dict[str, Any] = {}
    for op in operations:
        entry: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "responses": {}}
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 128}}
                  for name in re.findall(r"{(\w+)}", op.path)]
        for name in op.query:
            params.append({"name": name, "in": "query", "required": False,
                           "schema": QUERY_SCHEMAS.get(name, {"type": "string"})})
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": ref(op.body, "validation")}}}
        if op.response is not None:
            response = list_model(op.response) if op.lists else op.response
            entry["responses"][str(op.status)] = {"description": "OK", "content": {"application/json": {
                "schema": ref(response, "serialization")}}}
        else:
            entry["responses"][str(op.status)] = {"description": "OK"}
        for extra in op.extra_statuses:
            entry["responses"][str(extra)] = {"description": {204: "Nothing to return",
                                                              302: "Redirect to a presigned URL"}.get(extra, "OK")}
        statuses = [400, 404, 413] if op.public else [400, 401, 403, 404, 409, 413, 422]
        for code in statuses:
            entry["responses"][str(code)] = {"description": ERROR_STATUSES[code], "content": {
                "application/json": {"schema": ref(ErrorBody, "serialization")}}}
        if not op.public:
            entry["security"] = [{"bearer": []}]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Baton", "version": __version__,
                 "description": "Control plane for multi-agent software pipelines (contract v1)."},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a Baton API key (bt_...)"}}},
    }


@dataclass
class _Cache:
    document: Optional[dict[str, Any]] = None


cache = _Cache()


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m chalicelib.api.openapi [PATH]``: write the document (default docs/openapi.json)."""
    from pathlib import Path
    import sys

    args = sys.argv[1:] if argv is None else argv
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    import app as app_module

    target = Path(args[0]) if args else root / "docs" / "openapi.json"
    target.write_text(render(app_module.app))
    print(f"wrote {target}")
    return 0


def render(app: Any) -> str:
    import json

    return json.dumps(build_document(app), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
