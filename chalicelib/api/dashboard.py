"""The web dashboard: ``GET /ui`` and its assets, served by the same app (same origin as the API).

The page is a static client of the public API (``chalicelib/dashboard/``: ES modules, a style
sheet, no build step). Serving it needs no key; every data call it makes carries one. These routes
are not part of the OpenAPI document: they answer HTML, JavaScript and CSS to a browser, not the
contract's JSON (see ``tests/api/test_openapi.py``).

Every answer carries the page's security headers. The Content-Security-Policy allows scripts and
styles from this origin only (no inline script or style, no eval), and images and uploads from the
origin the proof bucket's presigned URLs point at (S3, or moto's server on the local stack), which
is asked of the proof store itself rather than guessed from the region.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from chalice import Blueprint, Response

bp = Blueprint(__name__)
logger = logging.getLogger("baton.api")

ASSETS = Path(__file__).resolve().parents[1] / "dashboard"
INDEX = "index.html"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
UI_PATHS = frozenset({"/ui", "/ui/{asset}"})


@bp.route("/ui", methods=["GET"])
def dashboard_page() -> Response:
    return asset_response(INDEX)


@bp.route("/ui/{asset}", methods=["GET"])
def dashboard_asset(asset: str) -> Response:
    return asset_response(asset)


def asset_file(name: str) -> Optional[tuple[bytes, str, str]]:
    """(content, content type, ETag) of the dashboard's file ``name``, if the folder has it. The
    name is looked up in the folder's own flat listing (no path is built from the URL); files are
    read on each request, so an edited asset shows on reload under ``make up``."""
    for path in ASSETS.iterdir():
        content_type = CONTENT_TYPES.get(path.suffix)
        if path.name == name and content_type and path.is_file():
            content = path.read_bytes()
            return content, content_type, '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    return None


def asset_response(name: str) -> Response:
    found = asset_file(name)
    if found is None:
        return Response(body='{"error":{"code":"not_found","message":"the dashboard has no such file; open /ui",'
                             '"details":[]}}', status_code=404,
                        headers={"Content-Type": "application/json", **security_headers()})
    content, content_type, etag = found
    headers = {"Content-Type": content_type, "ETag": etag, "Cache-Control": "no-cache", **security_headers()}
    request = bp.current_request
    if request is not None and (request.headers or {}).get("if-none-match") == etag:
        return Response(body="", status_code=304, headers=headers)
    return Response(body=content.decode("utf-8"), status_code=200, headers=headers)


def security_headers() -> dict[str, str]:
    return {"Content-Security-Policy": content_security_policy(proof_origins()),
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Resource-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()"}


def content_security_policy(proof_origins: list[str]) -> str:
    bucket = "".join(f" {origin}" for origin in proof_origins)
    return "; ".join([
        "default-src 'none'", "script-src 'self'", "style-src 'self'", f"img-src 'self'{bucket}",
        # uploads of a bug report's screenshots go straight to the bucket (a presigned POST)
        f"connect-src 'self'{bucket}",
        "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'", "object-src 'none'",
        "require-trusted-types-for 'script'", "trusted-types 'none'",
    ])


def proof_origins() -> list[str]:
    """The origins of the proof bucket's presigned URLs (GET and POST), or none when this
    deployment has no bucket. Presigning is local computation: no AWS call."""
    try:
        from ..bootstrap import get_services

        store = get_services().proofs.objects
        urls = [store.presigned_get("ui-origin-probe", expires_in=60, filename="probe"),
                store.presigned_post("ui-origin-probe", content_type="image/png", size=1, expires_in=60)["url"]]
    except Exception:   # no bucket configured, or services that cannot be built: images from 'self' only
        logger.warning("the dashboard's CSP names no proof bucket origin", exc_info=True)
        return []
    return sorted({origin for origin in map(origin_of, urls) if origin})


def origin_of(url: str) -> Optional[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c in parts.netloc for c in " ;,'\""):
        return None
    return f"{parts.scheme}://{parts.netloc}"
