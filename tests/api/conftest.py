"""The API tier: ``chalice.test.Client`` over in-process moto, as an admin (``api``), with a
project ``demo`` (``project``); ``fake_clock`` for lease and expiry rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api
from tests.support.aws import admin_key, aws, services  # noqa: F401  (fixtures)
from tests.support.clock import fake_clock  # noqa: F401  (a fixture)


@pytest.fixture
def api(services, admin_key):
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app) as client:
        yield Api(client, admin_key)


@pytest.fixture
def project(api) -> dict[str, Any]:
    response = api.post("/projects", {"id": "demo", "name": "Demo", "repository_url": "https://example.com/demo.git"})
    assert response.status_code == 201, response.data
    return response.data
