"""The API as tests call it: a JSON client over ``chalice.test.Client`` carrying a bearer key, and
the set-ups made through it (a run, relaxed roles)."""

from __future__ import annotations

import json
from typing import Any, Optional


class Api:
    """A thin JSON client over chalice.test.Client that carries a bearer key."""

    def __init__(self, client: Any, key: Optional[str]):
        self.client = client
        self.key = key

    def as_key(self, key: Optional[str]) -> "Api":
        return Api(self.client, key)

    def call(self, method: str, path: str, body: Any = None, *, raw: Optional[str] = None,
             headers: Optional[dict[str, str]] = None):
        all_headers = {"Content-Type": "application/json"}
        if self.key:
            all_headers["Authorization"] = f"Bearer {self.key}"
        all_headers.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(self.client.http, method.lower())(path, headers=all_headers, body=payload)
        response.data = _json_or_none(response.body)
        return response

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw):
        return self.call("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)


def _json_or_none(body: Any) -> Any:
    """The body as JSON; None when there is none or it is not JSON (the dashboard's pages)."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def start_run(api: Api, project_id: str = "demo", tasks: int = 3, **fields) -> dict[str, Any]:
    body = {"title": "a run", "tasks": [{"title": f"task {i}"} for i in range(tasks)], **fields}
    response = api.post(f"/projects/{project_id}/runs", body)
    assert response.status_code == 201, response.data
    return response.data


def relax_roles(api: Api, roles: tuple[str, ...] = ("dev", "qa", "security", "docs", "cicd")) -> None:
    """Publish role versions that require no proofs, for tests about the pipeline itself."""
    for role in roles:
        current = api.get(f"/roles/{role}").data
        spec = {k: current[k] for k in ("prompt", "executor", "command", "image", "timeout_seconds",
                                        "heartbeat_seconds")}
        response = api.call("PUT", f"/roles/{role}", {**spec, "required_proofs": []})
        assert response.status_code == 200, response.data
