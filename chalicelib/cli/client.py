"""The CLI's view of the API: the agent's ``BatonClient`` plus list paging and reading a redirect.

Errors are ``ApiError`` throughout (status 0 when the API cannot be reached), so the root command
maps every failure to one line and an exit code in one place.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from ..agent.client import ApiError, BatonClient
from ..agent.transfer import api_error_from_http

PAGE_LIMIT = 200


def with_query(path: str, **params: Any) -> str:
    """``path?name=value&...`` with the parameters that are not None, URL-encoded."""
    present = {name: value for name, value in params.items() if value is not None}
    return f"{path}?{urllib.parse.urlencode(present)}" if present else path


class _KeepRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # hand the 3xx back to the caller instead of following it with our key


class CliClient(BatonClient):
    def collect(self, path: str, limit: Optional[int] = None, **params: Any) -> list[dict[str, Any]]:
        """Every item of a paged list (``{items, next_cursor}``), or the first ``limit`` of them."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page_size = PAGE_LIMIT if limit is None else max(1, min(PAGE_LIMIT, limit - len(items)))
            page = self.get(with_query(path, **params, limit=page_size, cursor=cursor)) or {}
            items.extend(page.get("items", []))
            cursor = page.get("next_cursor")
            if not cursor or (limit is not None and len(items) >= limit):
                return items if limit is None else items[:limit]

    def location(self, path: str) -> str:
        """Where a ``302`` answer of ``path`` points, without following it: the target is a
        presigned URL, which must not receive our Authorization header."""
        request = urllib.request.Request(self.base_url + path, method="GET", headers={
            "Accept": "application/json", "Authorization": f"Bearer {self.api_key}"})
        opener = urllib.request.build_opener(_KeepRedirect)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                raise ApiError(response.status, "not_a_redirect",
                               f"expected a redirect from {path}, got {response.status}")
        except urllib.error.HTTPError as error:
            if error.code in (301, 302, 303, 307, 308) and error.headers.get("Location"):
                return urllib.parse.urljoin(self.base_url + path, error.headers["Location"])
            raise api_error_from_http(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ApiError(0, "unreachable", f"cannot reach the Baton API at {self.base_url}: {reason}") from None
