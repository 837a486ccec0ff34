"""A run of a thousand tasks started through the services, for checks that a read costs the same
whatever a run's size. moto's transactions are made linear while it exists (``linear_transactions``,
autouse where imported): moto copies the whole table once per item of a transaction, so writing
1,000 tasks in transactions of 100 would take a minute (see chalicelib/local/moto_fidelity.py)."""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from chalicelib.domain.requests import ProjectCreate, RunCreate
from chalicelib.local.moto_fidelity import patched_moto

TASKS = 1000


def parse(model: Any, **body: Any) -> Any:
    return model.model_validate_json(json.dumps(body))


@pytest.fixture(autouse=True)
def linear_transactions() -> Iterator[None]:
    with patched_moto():
        yield


@pytest.fixture
def big_run(services, admin_key) -> tuple[Any, Any]:
    """(the admin principal, a running run of ``TASKS`` tasks queued at dev) in project ``big``."""
    admin = services.keys.authenticate("Bearer " + admin_key)
    services.projects.create(admin, ProjectCreate(id="big", name="Big", repository_url="https://example.com/b.git"))
    run = services.runs.start(admin, "big", parse(RunCreate, title="a thousand tasks", stages=["dev", "qa", "sec"],
                                                 deploy_gate=False,
                                                 tasks=[{"title": f"task {i}"} for i in range(TASKS)]))
    return admin, run
