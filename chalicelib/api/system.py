"""GET /status (no auth)."""

from chalice import Blueprint

from .. import __version__
from ..domain.base import DomainModel
from .http import endpoint

bp = Blueprint(__name__)


class Status(DomainModel):
    status: str
    version: str
    stage: str


@endpoint(bp, "/status", public=True, response=Status, summary="Liveness and version")
def status():
    from ..config import Settings   # with the services, on the first request: not with the app

    return 200, {"status": "ok", "version": __version__, "stage": Settings.from_env().stage}


@endpoint(bp, "/openapi.json", public=True, summary="This API's OpenAPI 3.1 document")
def openapi_document():
    from .openapi import build_document, cache

    if cache.document is None:
        cache.document = build_document(bp.current_app)
    return 200, cache.document
