"""What every tier needs: placeholder AWS credentials (no test ever reaches a real account), the
names Baton's settings read (set before any test module imports chalicelib), one botocore loader
for the process, and the order of the tiers.

The tiers, each runnable alone (``pytest tests/<tier>``), in the order ``pytest tests`` runs them:

* ``unit``: no AWS, no network; the domain, parsers, CLI and runner units (tmp dirs and fakes).
* ``service``: in-process moto; services, repositories and moto's own behaviour called directly.
* ``api``: ``chalice.test.Client`` over in-process moto.
* ``e2e``: real servers and processes: one local stack for the tier (``e2e/conftest.py``), moto in
  server mode, the local API server on a socket, agents as subprocesses.
* ``browser``: the dashboard in Debian's Chromium driven by Playwright, against a local stack of its
  own (``browser/conftest.py``); screenshots of each view land in ``out/browser/``.
* ``fuzz``: schemathesis against a local stack of its own.
* ``infra``: what ships and what it is built from: the template's rules and the local resources
  made from it, the Lambda package, cfn-lint, checkov, bandit.

``make test-fast`` is unit + service; ``make test`` runs fuzz and infra in a second process beside
the rest. Helpers more than one module needs live in ``tests/support``; test modules never import
each other.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import botocore.loaders
import botocore.session
import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ["BATON_TABLE"] = "baton-test"
os.environ["BATON_STAGE"] = "test"
os.environ["BATON_IDEMPOTENCY_TABLE"] = "baton-test-idempotency"
os.environ["BATON_BUCKET"] = "baton-test-proofs"
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

# Every boto3 session otherwise builds its own botocore loader and re-reads and re-parses the same
# service models and endpoint data (~0.1 s per client, and the in-process tiers build their clients
# for every test). The loader only reads botocore's data files, so one per search path serves all.
botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "service", "api", "e2e", "browser", "fuzz", "infra")


def tier_of(item: pytest.Item) -> int:
    try:
        folder = item.path.relative_to(TESTS).parts[0]
    except ValueError:
        return len(TIERS)
    return TIERS.index(folder) if folder in TIERS else len(TIERS)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """``pytest tests`` runs the tiers cheapest first (a broken domain fails in seconds, not after the
    local stack), each tier in file order."""
    items.sort(key=tier_of)
