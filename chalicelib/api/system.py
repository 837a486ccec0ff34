"""GET /status (no auth)."""

from chalice import Blueprint

from .. import __version__
from ..config import Settings
from .http import endpoint

bp = Blueprint(__name__)


@endpoint(bp, "/status")
def status():
    return 200, {"status": "ok", "version": __version__, "stage": Settings.from_env().stage}
