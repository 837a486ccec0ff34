"""The dashboard in a real Chromium against the local stack: signing in, runs appearing, a run moving
across the board while agents work it, a human deciding the deploy gate with the button (and an
agent key seeing no button), kill with its confirmation, the task view's handoffs and proofs, the
bug form, the attention view, hostile agent text rendered as text, the CSP and where requests go,
and the back button."""

from __future__ import annotations

import struct
import time
import uuid
import zlib
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PROJECT, WAIT_MS, Agents, Dashboard


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small valid PNG of one colour."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:6]}"


def card(board: Dashboard, task_id: str):
    return board.page.locator(f"[data-testid=task-card][data-task-id='{task_id}']")


def lane(board: Dashboard, name: str):
    return board.page.get_by_test_id(f"lane-{name}")


# ---------------------------------------------------------------- signing in, the runs list


def test_sign_in_see_a_new_run_appear_and_sign_out(dashboard: Dashboard, agents: Agents):
    page = dashboard.page
    page.goto(dashboard.url())
    page.get_by_test_id("signin-key").fill("bt_" + "x" * 43)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("signin-error")).to_contain_text("does not accept this key")
    assert page.evaluate("sessionStorage.length") == 0

    dashboard.sign_in("human")
    expect(page.get_by_test_id("whoami")).to_have_text("ui-human · human")
    page.evaluate("window.__loaded_once = true")
    title = unique("Checkout v2")
    run = agents.start_run([f"task {i}" for i in range(3)], title=title)
    row = page.locator(f"[data-testid=run-row][data-run-id='{run['id']}']")
    expect(row).to_be_visible()                                     # the list refreshes itself
    expect(row).to_contain_text(title)
    expect(row.get_by_test_id("run-status")).to_contain_text("running")
    expect(row).to_contain_text("0 loop-backs")
    expect(row.get_by_test_id("run-cost")).to_have_text("$0.00")
    assert page.evaluate("window.__loaded_once") is True           # no reload happened
    assert page.evaluate("Object.keys(sessionStorage)") == ["baton.api_key"]
    dashboard.shot("runs")

    page.get_by_test_id("sign-out").click()
    expect(page.get_by_test_id("signin-key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    page.goto(dashboard.url(f"#/runs/{run['id']}"))              # a shared link asks for a key first
    expect(page.get_by_test_id("signin-key")).to_be_visible()


def test_the_status_filter_is_in_the_url_and_the_back_button_undoes_it(dashboard: Dashboard, agents: Agents):
    killed = agents.start_run(["k"], title=unique("Killed run"))
    agents.human.delete(f"/runs/{killed['id']}")
    running = agents.start_run(["r"], title=unique("Running run"))
    page = dashboard.page
    dashboard.sign_in("human")
    expect(page.locator(f"[data-run-id='{running['id']}']")).to_be_visible()
    page.get_by_test_id("filter-status").select_option("killed")
    expect(page).to_have_url(f"{dashboard.url()}#/runs?status=killed")
    expect(page.locator(f"[data-run-id='{killed['id']}']")).to_be_visible()
    expect(page.locator(f"[data-run-id='{running['id']}']")).to_have_count(0)
    page.go_back()
    expect(page).to_have_url(f"{dashboard.url()}#/runs")
    expect(page.locator(f"[data-run-id='{running['id']}']")).to_be_visible()


# ---------------------------------------------------------------- the run: live board, gates, kill


def test_the_board_moves_with_the_run_without_a_reload(dashboard: Dashboard, agents: Agents):
    run = agents.start_run(["build the cart", "fix the badge"], title=unique("Live run"))
    page = dashboard.page
    dashboard.sign_in("human", f"#/runs/{run['id']}")
    expect(page.get_by_test_id("run-title")).to_have_text(run["title"])
    expect(lane(dashboard, "dev").get_by_test_id("task-card")).to_have_count(2)
    page.evaluate("window.__same_page = true")
    events_before = page.get_by_test_id("event-row").count()

    claimed = agents.claim(run["id"], "dev")
    task_id = claimed["task"]["id"]
    moving = card(dashboard, task_id)
    expect(moving).to_have_attribute("data-status", "in_progress")   # the claim, seen by the poll
    expect(moving.get_by_test_id("claimed-by")).to_have_text("dev-bot")
    expect(moving.get_by_test_id("lease")).to_contain_text("lease ")
    expect(page.locator("[data-testid=event-row][data-action='task.claimed']").first).to_be_visible()
    assert page.get_by_test_id("event-row").count() > events_before
    dashboard.shot("run-claimed")

    agents.advance(claimed)
    expect(lane(dashboard, "qa").locator(f"[data-task-id='{task_id}']")).to_be_visible()
    expect(lane(dashboard, "dev").locator(f"[data-task-id='{task_id}']")).to_have_count(0)
    qa = agents.claim(run["id"], "qa", task_id)
    agents.advance(qa, "fail")                                        # QA sends it back: iteration 2 in dev
    expect(lane(dashboard, "dev").locator(f"[data-task-id='{task_id}']")).to_be_visible()
    expect(card(dashboard, task_id).get_by_test_id("task-iteration")).to_have_text("iter 2")
    expect(page.locator("[data-testid=event-row][data-action='task.looped_back']")).to_have_count(1)
    for stage in ("dev", "qa"):
        agents.advance(agents.claim(run["id"], stage, task_id))
    expect(lane(dashboard, "complete").locator(f"[data-task-id='{task_id}']")).to_be_visible()
    assert page.evaluate("window.__same_page") is True
    dashboard.shot("run-board")


def test_a_human_approves_the_deploy_gate_and_an_agent_key_sees_no_button(new_dashboard, agents: Agents):
    run = agents.start_run(["ship it"], title=unique("Gated run"), stages=["dev"], deploy_gate=True)
    agents.advance(agents.claim(run["id"], "dev"))
    agents.wait_run(run["id"], "awaiting_approval")

    robot = new_dashboard("agent")
    robot.sign_in("agent", f"#/runs/{run['id']}")
    gate = robot.page.get_by_test_id("gate-deploy")
    expect(gate).to_be_visible()
    expect(gate.get_by_test_id("gate-human-only")).to_be_visible()
    expect(robot.page.get_by_test_id("approve-deploy")).to_have_count(0)
    expect(robot.page.get_by_test_id("reject-deploy")).to_have_count(0)
    expect(robot.page.get_by_test_id("kill-run")).to_have_count(0)
    robot.shot("gate-as-agent")

    person = new_dashboard("human")
    page = person.page
    person.sign_in("human", f"#/runs/{run['id']}")
    expect(page.get_by_test_id("run-status")).to_contain_text("awaiting approval")
    page.get_by_test_id("gate-comment").fill("ship it: QA and security are green")
    person.shot("gate-pending")
    page.get_by_test_id("approve-deploy").click()
    expect(page.get_by_test_id("gate-deploy").get_by_test_id("gate-verdict")).to_contain_text("Approved by human:ui-human")
    approval = agents.admin.get(f"/runs/{run['id']}/approvals")["items"][0]
    assert (approval["status"], approval["decided_by"], approval["comment"]) == \
        ("approved", "human:ui-human", "ship it: QA and security are green")
    release = agents.claim(run["id"], "cicd")                         # the release task, worked by an agent
    expect(lane(person, "cicd").locator(f"[data-task-id='{release['task']['id']}']")).to_be_visible()
    agents.advance(release)
    expect(page.get_by_test_id("run-status")).to_contain_text("succeeded")
    person.shot("gate-approved")


def test_kill_asks_first_then_cancels_the_open_tasks(dashboard: Dashboard, agents: Agents):
    run = agents.start_run(["one", "two"], title=unique("Doomed run"))
    page = dashboard.page
    dashboard.sign_in("human", f"#/runs/{run['id']}")
    expect(lane(dashboard, "dev").get_by_test_id("task-card")).to_have_count(2)
    page.get_by_test_id("kill-run").click()
    expect(page.get_by_test_id("kill-dialog")).to_be_visible()
    expect(page.get_by_test_id("kill-dialog")).to_contain_text("2 open tasks will be cancelled")
    dashboard.shot("kill-confirm")
    page.get_by_test_id("kill-cancel").click()
    expect(page.get_by_test_id("kill-dialog")).to_have_count(0)
    assert agents.admin.get(f"/runs/{run['id']}")["status"] == "running"

    page.get_by_test_id("kill-run").click()
    page.get_by_test_id("kill-confirm").click()
    expect(page.get_by_test_id("run-status")).to_contain_text("killed")
    expect(lane(dashboard, "cancelled").get_by_test_id("task-card")).to_have_count(2)
    expect(page.get_by_test_id("kill-run")).to_have_count(0)
    assert agents.admin.get(f"/runs/{run['id']}")["status"] == "killed"


def test_the_attention_view_lists_a_waiting_gate_and_decides_it(dashboard: Dashboard, agents: Agents):
    run = agents.start_run(["a"], title=unique("Waiting run"), stages=["dev"], deploy_gate=True)
    agents.advance(agents.claim(run["id"], "dev"))
    agents.wait_run(run["id"], "awaiting_approval")
    page = dashboard.page
    dashboard.sign_in("human", "#/attention")
    item = page.locator(f"[data-testid=attention-item][data-run-id='{run['id']}']")
    expect(item).to_be_visible()
    expect(item.get_by_test_id("attention-run-link")).to_have_text(run["title"])
    dashboard.shot("attention")
    item.get_by_test_id("gate-comment").fill("not this week")
    item.get_by_test_id("reject-deploy").click()
    expect(page.locator(f"[data-testid=attention-item][data-run-id='{run['id']}']")).to_have_count(0)
    agents.wait_run(run["id"], "failed")


# ---------------------------------------------------------------- the task view


JUNIT = b"""<?xml version="1.0"?>
<testsuite name="cart" tests="3" failures="1" errors="0">
  <testcase classname="tests.test_cart" name="test_add"/>
  <testcase classname="tests.test_cart" name="test_total"/>
  <testcase classname="tests.test_cart" name="test_empty_cart"><failure message="assert 1 == 0">Traceback: cart not empty</failure></testcase>
</testsuite>
"""
SARIF = b"""{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Bandit", "rules": [{"id": "B602", "name": "subprocess_popen_with_shell_equals_true"}]}},
 "results": [{"ruleId": "B602", "level": "error", "message": {"text": "subprocess call with shell=True"},
              "properties": {"issue_severity": "HIGH"},
              "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/run.py"}, "region": {"startLine": 12}}}]}]}]}"""


def test_the_task_view_shows_handoffs_newest_first_with_a_diff_and_the_proofs(dashboard: Dashboard, agents: Agents):
    run = agents.start_run(["the cart badge"], title=unique("Evidence run"), stages=["dev"])
    claimed = agents.claim(run["id"], "dev")
    task_id = claimed["task"]["id"]
    worker = agents.under_claim(claimed)
    shot = agents.store_proof(worker, task_id, "screenshot", png(64, 40, (31, 95, 191)), "cart.png", "image/png")
    agents.store_proof(worker, task_id, "test_result", JUNIT, "junit.xml", "application/xml")
    agents.store_proof(worker, task_id, "report", SARIF, "bandit.sarif", "application/sarif+json")
    agents.store_proof(worker, task_id, "log", b"collecting ... 3 items\nFAILED test_empty_cart\n", "pytest.log", "text/plain")
    first = {"from_role": "dev", "to_role": "qa", "summary": "First try at the badge", "confidence": "medium",
             "work_done": [{"ref": "src/badge.py", "description": "count items"}], "learnings": ["the cart caches"]}
    worker.post(f"/tasks/{task_id}/handoffs", first)
    second = {**first, "summary": "Badge counts quantities now", "confidence": "high",
              "decisions": [{"choice": "sum quantities", "alternatives": ["count lines"], "reason": "what users expect"}],
              "open_questions": ["should 0 hide the badge?"], "proof_ids": [shot["id"]]}
    worker.post(f"/tasks/{task_id}/handoffs", second)

    page = dashboard.page
    dashboard.sign_in("human", f"#/tasks/{task_id}")
    expect(page.get_by_test_id("task-heading")).to_have_text("the cart badge")
    cards = page.get_by_test_id("handoff-card")
    expect(cards).to_have_count(2)
    expect(cards.nth(0).get_by_test_id("handoff-summary")).to_have_text("Badge counts quantities now")   # newest first
    expect(cards.nth(1).get_by_test_id("handoff-summary")).to_have_text("First try at the badge")
    expect(cards.nth(0)).to_contain_text("sum quantities")
    expect(cards.nth(0)).to_contain_text("over count lines")
    diff = cards.nth(0).get_by_test_id("handoff-diff")
    diff.locator("summary").click()
    expect(diff.locator(".diff-del")).to_contain_text(["summary: First try at the badge", "confidence: medium"])
    expect(diff.locator(".diff-add")).to_contain_text(["summary: Badge counts quantities now", "confidence: high"])
    expect(cards.nth(1).get_by_test_id("handoff-diff")).to_have_count(0)          # the oldest has nothing before it

    thumb = page.get_by_test_id("proof-thumb")
    expect(thumb).to_have_count(1)
    expect(thumb).to_have_attribute("alt", "Screenshot cart.png")
    page.wait_for_function("img => img.complete && img.naturalWidth === 64", arg=thumb.element_handle(), timeout=WAIT_MS)
    thumb.click()
    expect(page.get_by_test_id("proof-large")).to_be_visible()
    dashboard.shot("proof-enlarged")
    page.get_by_test_id("proof-close").click()

    junit = page.locator("[data-testid=proof-row][data-type=test_result]")
    junit.get_by_test_id("proof-view").click()
    expect(junit.get_by_test_id("junit-summary")).to_contain_text("3 tests: 2 passed, 1 failed, 0 errors, 0 skipped")
    expect(junit.get_by_test_id("junit-summary")).to_contain_text("tests.test_cart.test_empty_cart")
    report = page.locator("[data-testid=proof-row][data-type=report]")
    report.get_by_test_id("proof-view").click()
    expect(report.get_by_test_id("findings-table").locator("tbody tr")).to_have_count(1)
    expect(report.get_by_test_id("findings-table")).to_contain_text("app/run.py:12")
    log = page.locator("[data-testid=proof-row][data-type=log]")
    log.get_by_test_id("proof-view").click()
    expect(log.locator("pre")).to_contain_text("FAILED test_empty_cart")
    expect(page.get_by_test_id("history-row").first).to_be_visible()
    dashboard.shot("task")


# ---------------------------------------------------------------- reporting a bug


def test_the_bug_form_creates_a_bug_task_with_its_screenshot(dashboard: Dashboard, agents: Agents):
    page = dashboard.page
    dashboard.sign_in("human", "#/bug")
    title = unique("Checkout button overlaps the total")
    page.get_by_test_id("bug-title").fill(title)
    page.get_by_test_id("bug-description").fill("At 1280 px the button covers the price.")
    page.get_by_test_id("bug-severity").select_option("high")
    page.get_by_test_id("bug-screenshots").set_input_files(      # a name as screenshot tools make them
        [{"name": "Screen Shot 10.42.png", "mimeType": "image/png", "buffer": png(80, 50, (180, 35, 24))}])
    dashboard.shot("bug-form")
    page.get_by_test_id("bug-submit").click()
    created = page.get_by_test_id("bug-created")
    expect(created).to_have_text(title)
    expect(page.get_by_test_id("bug-screenshot-attached")).to_have_text("Screen Shot 10.42.png: attached")
    task_id = created.get_attribute("data-task-id")
    task = agents.admin.get(f"/tasks/{task_id}")
    assert (task["source"], task["priority"], task["project_id"]) == ("bug_report", 10, PROJECT)
    proofs = agents.admin.get(f"/tasks/{task_id}/proofs")["items"]
    assert [(p["type"], p["filename"], p["status"]) for p in proofs] == [("screenshot", "Screen_Shot_10.42.png", "stored")]
    created.click()
    expect(page.get_by_test_id("task-heading")).to_have_text(title)
    expect(page.get_by_test_id("proof-thumb")).to_have_count(1)
    dashboard.shot("bug-task")


# ---------------------------------------------------------------- safety


HOSTILE_IMG = '<img src=x onerror="window.__pwned=1">'
HOSTILE_SCRIPT = "<script>window.__pwned=2</script>"


def test_hostile_agent_text_is_shown_as_text_and_runs_nothing(dashboard: Dashboard, agents: Agents):
    run = agents.start_run([HOSTILE_IMG], title=HOSTILE_SCRIPT, stages=["dev"])
    claimed = agents.claim(run["id"], "dev")
    task_id = claimed["task"]["id"]
    worker = agents.under_claim(claimed)
    worker.post(f"/tasks/{task_id}/handoffs", {
        "from_role": "dev", "to_role": "qa", "summary": HOSTILE_IMG, "confidence": "low",
        "work_done": [{"ref": "javascript:window.__pwned=3", "description": HOSTILE_SCRIPT}],
        "decisions": [{"choice": '<a href="javascript:window.__pwned=4">click</a>', "alternatives": [HOSTILE_IMG],
                       "reason": "<iframe src=javascript:window.__pwned=5>"}],
        "notes_for_next": "<svg onload=window.__pwned=6>", "learnings": [HOSTILE_SCRIPT], "resume_prompt": HOSTILE_IMG})
    agents.store_proof(worker, task_id, "log", (HOSTILE_IMG + "\n" + HOSTILE_SCRIPT).encode(), "hostile.log", "text/plain")
    agents.store_proof(worker, task_id, "test_result",
                       b'<testsuite tests="1"><testcase name="&lt;img src=x onerror=window.__pwned=7&gt;">'
                       b'<failure message="<script>window.__pwned=8</script>"/></testcase></testsuite>',
                       "junit.xml", "application/xml")

    page = dashboard.page
    dashboard.sign_in("human", f"#/runs/{run['id']}")
    hostile_card = card(dashboard, task_id)
    expect(hostile_card.get_by_test_id("task-title")).to_have_text(HOSTILE_IMG)
    expect(page.get_by_test_id("run-title")).to_have_text(HOSTILE_SCRIPT)
    dashboard.shot("hostile-run")
    dashboard.go(f"#/tasks/{task_id}")
    expect(page.get_by_test_id("handoff-summary")).to_have_text(HOSTILE_IMG)
    for row in page.get_by_test_id("proof-view").all():
        row.click()
    expect(page.get_by_test_id("junit-summary")).to_contain_text("<img src=x onerror=window.__pwned=7>")
    expect(page.locator("[data-testid=proof-row][data-type=log] pre")).to_contain_text(HOSTILE_SCRIPT)
    dashboard.shot("hostile-task")

    assert page.evaluate("window.__pwned") is None
    assert dashboard.recorder.dialogs == []
    # nothing the agents wrote became an element: no img but the page's own, no extra script, no frame
    assert page.locator("img[src='x'], iframe, svg, object, embed").count() == 0
    assert page.evaluate("document.scripts.length") == 1
    assert page.evaluate("[...document.querySelectorAll('a[href]')].filter(a => !/^(https?:|#\\/)/.test(a.getAttribute('href'))).length") == 0
    assert not any("x" == urlsplit(u).path.rsplit("/", 1)[-1] for u in dashboard.recorder.requests)


def test_the_page_is_served_with_its_policy_and_talks_only_to_its_own_origins(dashboard: Dashboard, agents: Agents):
    page = dashboard.page
    response = page.goto(dashboard.url())
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    # The browser enforces it: Trusted Types refuse an HTML string sink, even from script of the page's own.
    refused = page.evaluate("() => { try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>'); return false; }"
                            " catch (error) { return error instanceof TypeError; } }")
    assert refused is True
    assert any("TrustedHTML" in error for error in dashboard.recorder.errors)   # the browser's report of it
    dashboard.recorder.errors.clear()

    run = agents.start_run(["look around"], title=unique("Origins run"), stages=["dev"])
    claimed = agents.claim(run["id"], "dev")
    agents.store_proof(agents.under_claim(claimed), claimed["task"]["id"], "screenshot", png(8, 8, (0, 0, 0)),
                       "s.png", "image/png")
    dashboard.sign_in("human")
    for route in (f"#/runs/{run['id']}", f"#/tasks/{claimed['task']['id']}", "#/attention", "#/roles", "#/roles/dev", "#/bug"):
        dashboard.go(route)
        expect(page.locator("main h1").first).to_be_visible()
    expect(page.get_by_test_id("proof-thumb")).to_have_count(0)       # the bug form: the task view was left
    dashboard.go(f"#/tasks/{claimed['task']['id']}")
    page.wait_for_function("() => { const i = document.querySelector('[data-testid=proof-thumb]'); return i && i.complete && i.naturalWidth > 0; }",
                           timeout=WAIT_MS)
    api_origin = f"http://127.0.0.1:{dashboard.stack.api_port}"
    bucket_origin = dashboard.stack.moto_url                          # the proof bucket's presigned URLs
    assert dashboard.recorder.origins() <= {api_origin, bucket_origin}, dashboard.recorder.origins()
    assert bucket_origin in dashboard.recorder.origins()             # the screenshot came from the bucket
    assert dashboard.recorder.errors == [], dashboard.recorder.errors


def test_the_back_button_walks_back_through_the_views(dashboard: Dashboard, agents: Agents):
    run = agents.start_run(["walk"], title=unique("Walk run"), stages=["dev"])
    task_id = agents.tasks(run["id"])[0]["id"]
    page = dashboard.page
    dashboard.sign_in("human")
    page.locator(f"[data-run-id='{run['id']}']").get_by_test_id("run-link").click()
    expect(page.get_by_test_id("run-title")).to_have_text(run["title"])
    card(dashboard, task_id).get_by_test_id("task-title").click()
    expect(page.get_by_test_id("task-heading")).to_have_text("walk")
    page.get_by_test_id("nav-roles").click()
    expect(page.get_by_test_id("role-row").first).to_be_visible()
    page.go_back()
    expect(page.get_by_test_id("task-heading")).to_have_text("walk")
    page.go_back()
    expect(page.get_by_test_id("run-title")).to_have_text(run["title"])
    page.go_back()
    expect(page.locator(f"[data-run-id='{run['id']}']")).to_be_visible()
    page.go_forward()
    expect(page.get_by_test_id("run-title")).to_have_text(run["title"])


# ---------------------------------------------------------------- roles, a phone, a big run


def test_roles_show_the_active_digest_and_a_diff_between_versions(dashboard: Dashboard, agents: Agents):
    before = agents.admin.get("/roles/docs")
    spec = {k: before[k] for k in ("prompt", "executor", "command", "image", "required_proofs", "timeout_seconds",
                                   "heartbeat_seconds")}
    after = agents.admin.put("/roles/docs", {**spec, "prompt": before["prompt"] + "\nWrite for beginners.",
                                             "timeout_seconds": 900})
    page = dashboard.page
    dashboard.sign_in("human", "#/roles/docs")
    expect(page.get_by_test_id("role-digest")).to_have_text(after["digest"])
    diff = page.get_by_test_id("role-diff")
    expect(diff.locator(".diff-add")).to_contain_text(["timeout_seconds: 900", "Write for beginners."])
    expect(diff.locator(".diff-del")).to_contain_text(["timeout_seconds: 600"])
    page.get_by_test_id("role-version-a").select_option(str(after["version"]))
    expect(page).to_have_url(f"{dashboard.url()}#/roles/docs?a={after['version']}&b={after['version']}")
    dashboard.shot("role-diff")


def test_a_phone_width_window_shows_the_run(new_dashboard, agents: Agents):
    run = agents.start_run(["small screen"], title=unique("Phone run"))
    phone = new_dashboard("phone", viewport={"width": 390, "height": 844})
    phone.sign_in("human", f"#/runs/{run['id']}")
    expect(phone.page.get_by_test_id("task-card")).to_have_count(1)
    width = phone.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px window"
    phone.shot("run")


def test_a_run_of_a_thousand_tasks_renders_its_whole_board(dashboard: Dashboard, agents: Agents):
    """Renders every card, the first page first. The times are printed (figures, not verdicts):
    after navigating, the first cards and the whole board; and the browser's own work of drawing
    the 1,000 cards, apart from the five pages of 200 tasks the API serves one after another."""
    run = agents.start_run([f"task {i:04d}" for i in range(1000)], title=unique("Big run"), parallelism=4)
    page = dashboard.page
    dashboard.sign_in("human")
    began = time.monotonic()
    page.evaluate("route => { window.__navigated = performance.now(); location.hash = route; }", f"#/runs/{run['id']}")
    expect(page.get_by_test_id("task-card").first).to_be_visible()
    first = time.monotonic() - began
    expect(page.get_by_test_id("task-card")).to_have_count(1000, timeout=60_000)
    whole = time.monotonic() - began
    expect(page.get_by_test_id("task-count")).to_have_text("1000 tasks")
    boards = page.evaluate("performance.getEntriesByName('baton:board').map(e => ({tasks: e.detail.tasks, "
                           "end: e.startTime + e.duration - window.__navigated, took: e.duration}))")
    drawn = max(b["took"] for b in boards if b["tasks"] == 1000)
    page_first = min(b["end"] for b in boards) / 1000
    page_whole = min(b["end"] for b in boards if b["tasks"] == 1000) / 1000
    # Playwright's expect polls (100, 250, 500, 1000 ms apart), so the times seen from here run late by
    # up to a poll; the page's own clock says when each board was drawn.
    print(f"\n1,000-task run in Chromium on the local stack: first cards {first:.2f} s, whole board {whole:.2f} s "
          f"after navigating as seen by the test; by the page's clock {page_first:.2f} s and {page_whole:.2f} s; "
          f"drawing the 1,000 cards took {drawn:.0f} ms")
    dashboard.shot("big-run")


# ---------------------------------------------------------------- budgets, canaries, fix tasks, attention


def test_the_budget_gate_needs_a_raise_to_be_approved(dashboard: Dashboard, agents: Agents):
    run = agents.start_run(["pricey", "next"], title=unique("Budget run"), stages=["dev"], parallelism=2,
                           ceilings={"max_cost_usd": 1})
    agents.advance(agents.claim(run["id"], "dev"),
                   usage={"tokens_in": 1000, "tokens_out": 100, "cost_usd": 1.5, "model": "claude-sonnet-4-5"})
    wait = agents.wait_run(run["id"], "awaiting_approval")
    assert wait["gate"] == "budget"
    page = dashboard.page
    dashboard.sign_in("human", f"#/runs/{run['id']}")
    expect(page.get_by_test_id("usage-cost")).to_have_text("$1.50")
    gate = page.get_by_test_id("gate-budget")
    expect(gate).to_contain_text("reached its budget")
    gate.get_by_test_id("approve-budget").click()                     # no raise given: the page says what to do
    expect(gate.locator("[role=alert]")).to_contain_text("say how much to raise it by")
    assert agents.admin.get(f"/runs/{run['id']}/approvals")["items"][0]["status"] == "pending"
    gate.get_by_test_id("gate-raise-cost").fill("5")
    gate.get_by_test_id("gate-comment").fill("worth it")
    dashboard.shot("budget-gate")
    gate.get_by_test_id("approve-budget").click()
    expect(page.get_by_test_id("gate-budget").get_by_test_id("gate-verdict")).to_contain_text("Approved by human:ui-human")
    assert agents.admin.get(f"/runs/{run['id']}/usage")["budget"]["max_cost_usd"] == 6.0
    agents.advance(agents.claim(run["id"], "dev"))
    expect(page.get_by_test_id("run-status")).to_contain_text("succeeded")


def test_canary_and_held_badges_and_a_fix_task_linking_to_its_parent(dashboard: Dashboard, agents: Agents):
    run = agents.start_run(["canary one", "held two"], title=unique("Canary run"), stages=["dev"],
                           canary={"fraction": 0.5})
    tasks = {t["id"]: t for t in agents.tasks(run["id"])}
    canary_id = next(t for t, task in tasks.items() if task["canary"])
    held_id = next(t for t, task in tasks.items() if not task["canary"])
    page = dashboard.page
    dashboard.sign_in("human", f"#/runs/{run['id']}")
    expect(card(dashboard, canary_id).get_by_test_id("canary-badge")).to_have_text("canary")
    expect(card(dashboard, held_id).get_by_test_id("held-badge")).to_have_text("held: canary")
    expect(card(dashboard, held_id).get_by_test_id("canary-badge")).to_have_count(0)

    claimed = agents.claim(run["id"], "dev", canary_id)
    report = {"findings": [{"title": "SQL built from user input", "severity": "high", "file": "app/db.py", "line": 7}]}
    created = agents.under_claim(claimed).post(f"/tasks/{canary_id}/findings",
                                               {"format": "security_report", "report": report})["created_tasks"]
    fix_id = created[0]["id"]
    fix = card(dashboard, fix_id)
    expect(fix).to_be_visible()                                         # it came with the events
    expect(fix.get_by_test_id("parent-link")).to_have_text(tasks[canary_id]["title"])
    dashboard.shot("canary-and-fix")
    fix.get_by_test_id("parent-link").click()
    expect(page.get_by_test_id("task-heading")).to_have_text(tasks[canary_id]["title"])


def test_attention_shows_the_gates_while_get_attention_answers_404(dashboard: Dashboard, agents: Agents):
    """A Baton without GET /attention (404): the view still lists the waiting gates and says the
    rest is not reported, without an error. With it, its items are shown as text."""
    run = agents.start_run(["a"], title=unique("No attention"), stages=["dev"], deploy_gate=True)
    agents.advance(agents.claim(run["id"], "dev"))
    agents.wait_run(run["id"], "awaiting_approval")
    page = dashboard.page
    page.route("**/attention?*", lambda route: route.fulfill(
        status=404, content_type="application/json",
        body='{"error": {"code": "not_found", "message": "there is no such endpoint", "details": []}}'))
    dashboard.sign_in("human", "#/attention")
    expect(page.locator(f"[data-testid=attention-item][data-run-id='{run['id']}']")).to_be_visible()
    expect(page.get_by_test_id("attention-unavailable")).to_be_visible()
    expect(page.locator(".error")).to_have_count(0)
    dashboard.shot("attention-404")

    page.unroute("**/attention?*")
    escalation = {"id": "att_test", "kind": "escalation", "project_id": PROJECT, "run_id": run["id"], "task_id": None,
                  "summary": HOSTILE_IMG, "details": {"rule": HOSTILE_SCRIPT}, "status": "open",
                  "created_at": "2026-11-30T10:00:00Z"}
    import json

    paused = {**escalation, "id": "att_paused", "task_id": "task_x", "summary": "The same failure came back 4 times",
              "details": {"rule": "same_failure", "action": "pause_task", "paused": True, "key": "k",
                          "evidence": {"times": 4, "sample": "tests.test_checkout::test_total[<n>]"}}}
    idle = {**escalation, "id": "att_idle", "kind": "idle_queue", "summary": "2 task(s) wait at qa",
            "details": {"rule": "idle_queue", "action": "escalate", "evidence": {"stage": "qa", "waited_minutes": 45}}}

    page.route("**/attention?*", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body=json.dumps({"items": [escalation, paused, idle], "next_cursor": None})))
    dashboard.go("#/runs")
    dashboard.go("#/attention")
    item = page.locator("[data-testid=attention-item][data-kind=escalation]").first
    expect(item).to_contain_text(HOSTILE_IMG)
    expect(item).to_contain_text(HOSTILE_SCRIPT)
    assert page.evaluate("window.__pwned") is None and page.locator("img[src='x']").count() == 0
    # the director's items: the rule, then the evidence one fact per line; a pause says resolving resumes the task
    pause_item = page.locator("[data-testid=attention-item][data-rule=same_failure]")
    expect(pause_item.get_by_test_id("attention-evidence")).to_contain_text("tests.test_checkout::test_total[<n>]")
    expect(pause_item.get_by_test_id("attention-evidence")).to_contain_text("pause task")
    expect(pause_item.get_by_test_id("attention-paused")).to_be_visible()
    expect(pause_item.get_by_test_id("resolve-item")).to_have_text("Resolve and resume the task")
    idle_item = page.locator("[data-testid=attention-item][data-kind=idle_queue]")
    expect(idle_item.get_by_test_id("attention-evidence")).to_contain_text("waited minutes")
    expect(idle_item.get_by_test_id("resolve-item")).to_have_text("Resolve")
    dashboard.shot("attention-director")


def test_a_long_history_shows_its_newest_events_without_reading_them_all(dashboard: Dashboard, agents: Agents):
    """The events API reads forwards only. A run with 5,000 events (served here by a stand-in for
    GET /runs/{id}/events) opens on its newest 300, found by probing, not by reading 25 pages."""
    import json
    from urllib.parse import parse_qs

    run = agents.start_run(["long"], title=unique("Long history"), stages=["dev"])
    total = 5000
    reads: list[int] = []

    def events(route: Any) -> None:
        query = parse_qs(urlsplit(route.request.url).query)
        after, limit = int(query.get("after", ["0"])[0]), int(query.get("limit", ["50"])[0])
        reads.append(limit)
        items = [{"seq": seq, "at": "2026-11-30T10:00:00Z", "actor": "agent:bot", "action": "note.added",
                  "entity": f"run:{run['id']}", "data": {"n": seq}} for seq in range(after + 1, min(after + limit, total) + 1)]
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps({"items": items, "next_cursor": str(items[-1]["seq"]) if len(items) == limit else None}))

    page = dashboard.page
    page.route(f"**/runs/{run['id']}/events?*", events)
    dashboard.sign_in("human", f"#/runs/{run['id']}")
    rows = page.get_by_test_id("event-row")
    expect(rows.first).to_have_attribute("data-seq", str(total))
    expect(rows).to_have_count(300)
    expect(rows.last).to_have_attribute("data-seq", str(total - 299))
    assert len([limit for limit in reads if limit == 200]) <= 3, reads     # not 25 pages of 200
    assert len(reads) < 40, reads


def test_the_page_works_under_a_stage_prefix_as_behind_api_gateway(dashboard: Dashboard, agents: Agents):
    """API Gateway's own URL puts the stage first (https://…/api/ui): the page loads its files and
    calls the API relative to where it is. Here /api/* is forwarded to the stack's root."""
    run = agents.start_run(["prefixed"], title=unique("Prefixed run"), stages=["dev"])
    root = f"http://127.0.0.1:{dashboard.stack.api_port}"
    seen: list[str] = []

    def strip_stage(route: Any) -> None:
        seen.append(route.request.url)
        answer = route.fetch(url=route.request.url.replace(f"{root}/api/", f"{root}/", 1))
        route.fulfill(response=answer)

    page = dashboard.page
    page.route(f"{root}/api/**", strip_stage)
    page.goto(f"{root}/api/ui#/runs/{run['id']}")
    page.get_by_test_id("signin-key").fill(agents.keys["human"])
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("run-title")).to_have_text(run["title"])
    paths = {urlsplit(u).path for u in dashboard.recorder.requests if u.startswith(root)}
    assert {"/api/ui/app.js", "/api/ui/style.css", "/api/whoami", f"/api/runs/{run['id']}"} <= paths, paths
    assert not [p for p in paths if not p.startswith("/api/")], paths
