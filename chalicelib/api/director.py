"""Director settings: GET/PATCH /director/settings."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.entities import DirectorSettings
from ..domain.requests import DirectorSettingsPatch
from .http import endpoint, parse_body, principal
from .query import query

bp = Blueprint(__name__)


@endpoint(bp, "/director/settings", response=DirectorSettings, summary="The director's settings")
def get_director_settings():
    query(bp, set())
    return 200, get_services().director.get(principal())


@endpoint(bp, "/director/settings", methods=["PATCH"], body=DirectorSettingsPatch, response=DirectorSettings,
          summary="Change the director's settings (admin only)")
def patch_director_settings():
    request = parse_body(bp.current_request.raw_body, DirectorSettingsPatch)
    return 200, get_services().director.patch(principal(), request)
