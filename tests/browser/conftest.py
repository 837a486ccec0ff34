"""The browser tier: Playwright driving Debian's Chromium (``/usr/bin/chromium``; Playwright's own
browser download is unreachable) against a local stack of this tier's own, started the way the e2e
tier starts one (``LocalStack``): moto server with Step Functions executing, the API on a real
port serving the dashboard at ``/ui``.

The agents are this test code: the roles are ``external``, and a test claims and advances tasks
through the API with an agent key (``Agents``), so the page is watched while a run moves, at the
pace the test sets. The browser never waits on a sleep: Playwright's ``expect`` polls until its
(generous) timeout, which bounds a hang and never decides an outcome.

Each test gets a fresh browser context (its own sessionStorage) and page, which record every
request the page makes, every console error, page error and dialog; after the test, a screenshot
of the page is saved under ``out/browser/`` (with the views the tests save themselves): the test
artifacts. Without Chromium the tier fails and says how to install it; ``BATON_SKIP_BROWSER=1``
skips it on purpose.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import urlsplit

import pytest

from chalicelib.agent.client import BatonClient
from chalicelib.agent.transfer import file_digest, upload_presigned_post
from chalicelib.local.stack import LocalStack
from tests.support.waiting import wait_for

CHROMIUM = os.environ.get("BATON_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "out" / "browser"
PROJECT = "ui-shop"
ROLES = ("dev", "qa", "security", "docs", "cicd")
# Quiet, deterministic headless Chromium: no sandbox (CI runs as root), no background traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-default-apps", "--disable-sync", "--no-first-run",
                 "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
                 "--dns-prefetch-disable", "--no-pings"]
WAIT_MS = 15_000      # the longest any expect waits: a hang fails, a slow machine does not


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("BATON_SKIP_BROWSER") == "1":
        skip = pytest.mark.skip(reason="BATON_SKIP_BROWSER=1")
        for item in items:
            if Path(__file__).parent in item.path.parents:
                item.add_marker(skip)


def external(role: str) -> dict[str, Any]:
    return {"prompt": f"external {role}", "executor": "external", "required_proofs": [], "timeout_seconds": 600,
            "heartbeat_seconds": 300}


@dataclass
class Agents:
    """The people and agents of the tier's project, as API clients."""

    stack: LocalStack
    admin: BatonClient
    keys: dict[str, str]

    def client(self, who: str) -> BatonClient:
        return BatonClient(self.stack.api_url, self.keys[who])

    @property
    def agent(self) -> BatonClient:
        return self.client("agent")

    @property
    def human(self) -> BatonClient:
        return self.client("human")

    def start_run(self, titles: list[str], **fields: Any) -> dict[str, Any]:
        body = {"title": fields.pop("title", "a run"), "stages": ["dev", "qa"], "deploy_gate": False,
                "tasks": [{"title": t} for t in titles], **fields}
        return self.human.post(f"/projects/{PROJECT}/runs", body)

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        return self.admin.get(f"/runs/{run_id}/tasks?limit=200")["items"]

    def claim(self, run_id: str, stage: str, task_id: Optional[str] = None) -> dict[str, Any]:
        """The next task of ``stage`` the run's execution dispatched (dispatch is asynchronous)."""
        body = {"stage": stage, "agent_id": f"{stage}-bot", "run_id": run_id}
        if task_id:
            body["task_id"] = task_id
        return wait_for(lambda: self.agent.post("/queue/claim", body), f"a {stage} task of {run_id} to claim", 60)

    def advance(self, claimed: dict[str, Any], result: str = "pass", **extra: Any) -> dict[str, Any]:
        return self.agent.post(f"/tasks/{claimed['task']['id']}/advance",
                               {"claim_id": claimed["claim"]["claim_id"], "result": result, **extra})

    def under_claim(self, claimed: dict[str, Any]) -> BatonClient:
        return self.agent.for_claim(claimed["claim"]["claim_id"])

    def store_proof(self, client: BatonClient, task_id: str, proof_type: str, data: bytes, filename: str,
                    content_type: str) -> dict[str, Any]:
        declared = client.post(f"/tasks/{task_id}/proofs", {"type": proof_type, "filename": filename,
                                                            "content_type": content_type, "size": len(data),
                                                            "sha256": file_digest(data)})
        upload = declared["upload"]
        upload_presigned_post(upload["url"], upload["fields"], filename, content_type, data)
        return client.post(f"/proofs/{declared['proof']['id']}/confirm")

    def wait_run(self, run_id: str, status: str) -> dict[str, Any]:
        return wait_for(lambda: (lambda r: r if r["status"] == status else None)(self.admin.get(f"/runs/{run_id}")),
                        f"run {run_id} to be {status}", 60)


@pytest.fixture(scope="package")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tier needs Chromium at {CHROMIUM}: as root, apt-get update && apt-get install -y "
                    "chromium (.ci/run does it), or set BATON_CHROMIUM; BATON_SKIP_BROWSER=1 skips the tier")
    with LocalStack(workdir=tmp_path_factory.mktemp("baton"), prefix="baton-browser", visibility_timeout=5,
                    sweep_seconds=1, max_attempts=3, write_config=False) as running:
        yield running


@pytest.fixture(scope="package")
def agents(stack: LocalStack) -> Agents:
    admin = BatonClient(stack.api_url, stack.admin_key)
    for role in ROLES:
        admin.put(f"/roles/{role}", external(role))
    admin.post("/projects", {"id": PROJECT, "name": "UI Shop", "repository_url": "https://example.com/ui-shop.git"})
    keys = {"admin": stack.admin_key}
    for name, kind in (("human", "human"), ("agent", "agent")):
        keys[name] = admin.post("/keys", {"name": f"ui-{name}", "principal": kind, "project_ids": [PROJECT]})["key"]
    return Agents(stack=stack, admin=admin, keys=keys)


@pytest.fixture(scope="package")
def browser(stack: LocalStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Recorder:
    """What a page did: every request (URL), console errors, uncaught errors, dialogs."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def origins(self) -> set[str]:
        return {f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" for u in self.requests if not u.startswith(("data:", "blob:"))}


class Dashboard:
    """A browser tab on the dashboard: sign in, go to a view, save a screenshot."""

    def __init__(self, page: Any, stack: LocalStack, agents: Agents, recorder: Recorder, name: str):
        self.page = page
        self.stack = stack
        self.agents = agents
        self.recorder = recorder
        self.name = name

    def url(self, route: str = "") -> str:
        return f"{self.stack.dashboard_url}{route}"

    def sign_in(self, who: str = "human", route: str = "#/runs") -> None:
        from playwright.sync_api import expect

        self.page.goto(self.url(route))
        self.page.get_by_test_id("signin-key").fill(self.agents.keys[who])
        self.page.get_by_test_id("signin-submit").click()
        expect(self.page.get_by_test_id("whoami")).to_contain_text(who if who != "admin" else "admin", timeout=WAIT_MS)

    def go(self, route: str) -> None:
        self.page.evaluate("route => { location.hash = route; }", route)

    def shot(self, view: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{self.name}--{view}.png"), full_page=True)


def _artifact_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:120]


@pytest.fixture
def new_dashboard(browser: Any, stack: LocalStack, agents: Agents, request: pytest.FixtureRequest):
    """Open a fresh tab (its own context and sessionStorage); more than one per test for two people."""
    opened: list[tuple[Any, Dashboard]] = []

    def open_tab(label: str = "", viewport: Optional[dict[str, int]] = None) -> Dashboard:
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, service_workers="block")
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        recorder = Recorder()
        page.on("request", lambda r: recorder.requests.append(r.url))
        page.on("console", lambda m: recorder.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: recorder.errors.append(f"pageerror: {e}"))

        def on_dialog(dialog: Any) -> None:
            recorder.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        name = _artifact_name(request) + (f"-{label}" if label else "")
        board = Dashboard(page, stack, agents, recorder, name)
        opened.append((context, board))
        return board

    yield open_tab
    for context, board in opened:
        try:
            board.shot("last")
        finally:
            context.close()


@pytest.fixture
def dashboard(new_dashboard) -> Dashboard:
    return new_dashboard()
