"""A small client of Baton's HTTP API (standard library only, so the agent image stays slim)."""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from typing import Any, Optional


class ApiError(Exception):
    """The API answered with an error (status and the contract's error body), or was unreachable."""

    def __init__(self, status: int, code: str, message: str, details: Optional[list] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


class BatonClient:
    def __init__(self, base_url: str, api_key: Optional[str], timeout: float = 30.0,
                 claim_id: Optional[str] = None):
        if not base_url.startswith(("http://", "https://")):
            raise ApiError(0, "bad_url", f"the API URL must start with http:// or https://, not {base_url[:40]!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.claim_id = claim_id

    def __repr__(self) -> str:   # never the key, in a traceback or a log line
        return f"{type(self).__name__}({self.base_url!r})"

    def for_claim(self, claim_id: str) -> "BatonClient":
        """The same client, naming the claim it works under (``Baton-Claim``) on every request: an
        agent's evidence counts only under its live claim. A job token carries its claim already."""
        bound = copy.copy(self)
        bound.claim_id = claim_id
        return bound

    def credentials(self, content_type: str = "application/json") -> dict[str, str]:
        """The headers every request of this client carries: its key and the claim it works under."""
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if self.claim_id:
            headers["Baton-Claim"] = self.claim_id
        return headers

    def request(self, method: str, path: str, body: Any = None,
                headers: Optional[dict[str, str]] = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        all_headers = {**self.credentials(), **(headers or {})}
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # nosec B310  # scheme checked in __init__
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                payload = json.loads(raw)["error"]
                raise ApiError(error.code, payload.get("code", "error"), payload.get("message", ""),
                               payload.get("details")) from None
            except (ValueError, KeyError, TypeError):
                raise ApiError(error.code, "http_error", raw.decode(errors="replace")[:300] or error.reason) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(0, "unreachable", f"cannot reach the Baton API at {self.base_url}: {reason}") from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)[1]

    def post(self, path: str, body: Any = None, headers: Optional[dict[str, str]] = None) -> Any:
        return self.request("POST", path, body if body is not None else {}, headers)[1]

    def post_status(self, path: str, body: Any = None) -> tuple[int, Any]:
        return self.request("POST", path, body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)[1]

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)[1]

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)[1]
