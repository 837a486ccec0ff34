"""The e2e tier: real servers and processes.

One local stack (moto server + Step Functions + SQS pump + sweeper + the API on a real port + agents
as subprocesses) serves every module of this tier that asks for ``stack``: it starts with the first
such test and stops after the last test of the tier. Modules keep out of each other's way by
their own project ids; the role configs are the stack's one shared setting, so ``stack`` puts back
at the end of each module every role config the module changed (the next module sees the roles a
fresh stack has). Runs pin their role versions when they start, so a change made later never
reaches a run already going.

The stack and the in-process tests of this tier cannot overlap: the stack sets the process's AWS
endpoint and owns ``bootstrap``'s services, which in-process moto (``test_local_server``) and the
moto-server modules (``test_claim_concurrency``, ``test_proof_uploads``) replace while they run.
So the tests that do not use the stack run first (``pytest_collection_modifyitems`` below).

Some scenarios are mostly waiting (a crashed runner's lease lapsing three times is a minute and a
half). Their runs start with the stack (``background_runs``, tests/e2e/background.py) and the tests
that check them run last, so the waiting overlaps every other test of the tier.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib.agent.client import BatonClient
from chalicelib.local.stack import LocalStack
from tests.e2e.background import UNLAUNCHABLE, refusing_launches, start_runs
from tests.support.roles import restore_roles, role_specs

E2E = Path(__file__).resolve().parent
BACKGROUND_RUNS = ("background_runs",)


def place(item: pytest.Item) -> tuple[bool, bool]:
    """(uses the stack, checks a background run): the sort key of this tier's tests. Every test of
    the stack has the background runs among its fixtures (``stack`` starts them): a test checks one
    when it names it as an argument."""
    arguments = inspect.signature(item.function).parameters if hasattr(item, "function") else {}
    return "stack" in getattr(item, "fixturenames", ()), any(name in arguments for name in BACKGROUND_RUNS)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Within this tier (and only here): the tests without the stack, then those with it, then those
    that check a background run; each group in file order."""
    here = [i for i, item in enumerate(items) if E2E in item.path.resolve().parents]
    ordered = sorted((items[i] for i in here), key=place)
    for slot, item in zip(here, ordered):
        items[slot] = item


@pytest.fixture(scope="package")
def shared_stack(tmp_path_factory) -> Iterator[LocalStack]:
    """The tier's one local stack. Short timings, so that waiting on a lapsed lease, a redelivery or
    a sweep takes seconds: SQS visibility 5 s, a sweep every second, 3 attempts per stage job, webhook
    retries from 1 s."""
    with LocalStack(workdir=tmp_path_factory.mktemp("baton"), prefix="baton-e2e", visibility_timeout=5,
                    sweep_seconds=1, max_attempts=3, write_config=False, webhook_retry_base_seconds=1) as running:
        yield running


@pytest.fixture(scope="package")
def background_runs(shared_stack: LocalStack, tmp_path_factory) -> Iterator[dict[str, dict[str, Any]]]:
    """The runs of tests/e2e/background.py, by name, started as soon as the stack is up."""
    with refusing_launches(shared_stack, UNLAUNCHABLE):
        yield start_runs(shared_stack, lambda: tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def stack(shared_stack: LocalStack, background_runs: dict[str, dict[str, Any]]) -> Iterator[LocalStack]:
    """The shared stack, for one module: the role configs it changes are put back when it ends."""
    admin = BatonClient(shared_stack.api_url, shared_stack.admin_key)
    before = role_specs(admin)
    yield shared_stack
    restore_roles(admin, before)
