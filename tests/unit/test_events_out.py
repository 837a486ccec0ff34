"""Events out, the pure rules: which patterns a webhook may name, which URLs and addresses it may
reach, how a delivery is signed, identified, shaped and retried (domain.events, domain.webhooks)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from chalicelib.domain import events, webhooks
from chalicelib.domain.director.vocabulary import ActionKind
from chalicelib.domain.events import KNOWN_ACTIONS, check_pattern, check_patterns, matches
from chalicelib.domain.handoffs import HandoffStatus
from chalicelib.domain.messages import RunWaitMessage
from chalicelib.domain.webhook_addresses import address_refusal, check_url
from chalicelib.domain.webhooks import WebhookCreate, delivery_body, delivery_id, retry_delay, signature, verify

CHALICELIB = Path(__file__).resolve().parents[2] / "chalicelib"


# ---------------------------------------------------------------- patterns


@pytest.mark.parametrize("pattern", ["approval.requested", "run.*", "task.*", "tasks.*", "*", "budget.exhausted",
                                     "director.*"])
def test_a_known_action_a_family_or_everything_is_a_pattern(pattern):
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize("pattern", ["approval.requestd", "runs.*", "run.**", "run.*.x", "", "*.*", "run",
                                     "approval.*x", "APPROVAL.REQUESTED", "run.created ", "task.claimed,task.passed"])
def test_anything_else_is_refused_with_what_is_allowed(pattern):
    with pytest.raises(ValueError) as refused:
        check_pattern(pattern)
    assert "unknown event pattern" in str(refused.value) and "run.*" in str(refused.value)


def test_a_typo_in_a_known_family_lists_its_actions():
    with pytest.raises(ValueError, match="approval.requested"):
        check_pattern("approval.requestd")


def test_patterns_are_deduplicated_and_capped():
    assert check_patterns(["run.*", "approval.requested", "run.*"]) == ["run.*", "approval.requested"]
    with pytest.raises(ValueError):
        check_patterns([])


@pytest.mark.parametrize("patterns,action,wanted", [
    (["run.*"], "run.created", True), (["run.*"], "runs.created", False), (["run.*"], "tasks.cancelled", False),
    (["task.*"], "tasks.cancelled", False), (["tasks.*"], "tasks.cancelled", True),
    (["approval.requested"], "approval.requested", True), (["approval.requested"], "approval.approved", False),
    (["*"], "usage.reported", True), (["proof.stored", "run.*"], "run.killed", True), ([], "run.killed", False)])
def test_matching(patterns, action, wanted):
    assert matches(patterns, action) is wanted


def _committed_actions() -> set[str]:
    """Every literal that names an audit action where the code commits one: ``action=`` arguments,
    transitions, the run's creation event and conditional expressions among them."""
    found: set[str] = set()
    for path in CHALICELIB.rglob("*.py"):
        if "local" in path.parts or "cli" in path.parts or "dashboard" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            values = []
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                values += [k.value for k in node.keywords if k.arg == "action"]
                if name in ("_transition", "Transition") and node.args:
                    values.append(node.args[0])
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "action" for t in node.targets):
                values.append(node.value)
            if isinstance(node, ast.Dict):
                values += [v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant) and k.value == "action"]
            for value in values:
                for leaf in ast.walk(value):
                    if isinstance(leaf, ast.Constant) and isinstance(leaf.value, str) and "." in leaf.value \
                            and not leaf.value.endswith("."):   # the fixed part of an f-string (below)
                        found.add(leaf.value)
    return found


def test_every_action_the_code_commits_is_known():
    literal = _committed_actions()
    assert {"run.created", "task.claimed", "approval.requested", "job.redispatched", "budget.warning"} <= literal
    formatted = {f"handoff.{s.value}" for s in HandoffStatus} | {"approval.approved", "approval.rejected"} | \
        {f"run.{kind}" for kind in RunWaitMessage.model_fields["kind"].annotation.__args__} | \
        {f"director.{kind.value}" for kind in ActionKind}
    unknown = sorted((literal | formatted) - KNOWN_ACTIONS)
    assert unknown == [], f"add these to domain/events.py KNOWN_ACTIONS (and the README's list): {unknown}"


# ---------------------------------------------------------------- URLs and addresses


@pytest.mark.parametrize("url", ["https://hooks.example.com/baton", "https://hooks.example.com:8443/x?y=1",
                                 "https://93.184.216.34/hook", "https://[2606:2800:220:1:248:1893:25c8:1946]/h"])
def test_public_https_urls_are_accepted(url):
    assert check_url(url)[0] == "https"


@pytest.mark.parametrize("url,reason", [
    ("http://hooks.example.com/x", "https"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.7/hook", "private"), ("https://192.168.1.20/hook", "private"), ("https://172.16.5.4/", "private"),
    ("https://127.0.0.1/hook", "this machine"), ("https://localhost/hook", "this machine"),
    ("https://[::1]/hook", "this machine"), ("https://[fd00::1]/x", "private"), ("https://[fe80::1]/x", "link-local"),
    ("https://[::ffff:169.254.169.254]/x", "link-local"), ("https://224.0.0.1/x", "multicast"),
    ("https://0.0.0.0/x", "reserved"), ("https://100.64.0.1/x", "private"), ("https://240.0.0.1/x", "reserved"),
    ("https://user:pw@hooks.example.com/x", "credentials"), ("ftp://hooks.example.com/x", "https"),
    ("https:///nohost", "host"), ("https://hooks.example.com/x#frag", "fragment"),
    ("https://hooks.example.com:99999/x", "port"), ("https://hooks.example.com/a b", "spaces")])
def test_urls_deliveries_may_not_reach_are_refused(url, reason):
    with pytest.raises(ValueError, match=reason):
        check_url(url)


def test_the_local_stack_may_reach_its_own_machine_and_nothing_else_private():
    for url in ("http://127.0.0.1:8123/hook", "http://localhost:9000/x", "https://[::1]:8443/x"):
        assert check_url(url, allow_loopback=True)
    for url in ("http://10.0.0.7/hook", "https://169.254.169.254/", "http://hooks.example.com/x"):
        with pytest.raises(ValueError):
            check_url(url, allow_loopback=True)


@pytest.mark.parametrize("address,refused", [
    ("8.8.8.8", None), ("2001:4860:4860::8888", None), ("169.254.169.254", "link-local"),
    ("fd00:ec2::254", "private"), ("::ffff:10.0.0.1", "private"), ("2002:a9fe:a9fe::1", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"), ("127.0.0.53", "loopback"), ("::", "reserved"), ("ff02::1", "multicast")])
def test_each_resolved_address_is_checked_including_embedded_ipv4(address, refused):
    reason = address_refusal(address)
    assert (reason is None) if refused is None else (refused in reason)


def test_the_request_model_checks_shape_and_patterns():
    hook = WebhookCreate.model_validate({"url": "https://hooks.example.com/x", "events": ["run.*", "run.*"]})
    assert hook.events == ["run.*"] and hook.format == "baton" and hook.secret is None
    for bad in ({"url": "https://hooks.example.com/x", "events": ["nope.*"]},
                {"url": "https://hooks.example.com/x", "events": []},
                {"url": "https://hooks.example.com/x", "events": ["*"], "secret": "short"},
                {"url": "https://hooks.example.com/x", "events": ["*"], "format": "teams"},
                {"url": "gopher://x/", "events": ["*"]},
                {"url": "https://hooks.example.com/x", "events": ["*"], "extra": 1}):
        with pytest.raises(ValidationError):
            WebhookCreate.model_validate(bad)


# ---------------------------------------------------------------- deliveries


def test_a_signature_verifies_with_its_secret_only():
    body = b'{"action":"run.created"}'
    header = signature("s3cret-s3cret-s3cret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify("s3cret-s3cret-s3cret", body, header)
    assert not verify("another-secret-000", body, header)
    assert not verify("s3cret-s3cret-s3cret", body + b" ", header)


def test_delivery_ids_are_the_same_for_the_same_event_and_differ_otherwise():
    first = delivery_id("whk_A", "run_B", 7)
    assert first == delivery_id("whk_A", "run_B", 7) and first.startswith("dlv_") and len(first) == 30
    assert len({first, delivery_id("whk_A", "run_B", 8), delivery_id("whk_A", "run_C", 7),
                delivery_id("whk_Z", "run_B", 7)}) == 4


def test_backoff_doubles_with_jitter_and_stays_under_its_cap():
    assert retry_delay(1, 1, 3600, 0.0) == 1 and retry_delay(1, 1, 3600, 0.99) == 1
    assert [retry_delay(n, 30, 3600, 0.0) for n in range(1, 10)] == [15, 30, 60, 120, 240, 480, 960, 1800, 1800]
    assert [retry_delay(n, 30, 3600, 0.999999) for n in (1, 2, 8, 9, 60)] == [30, 60, 3600, 3600, 3600]
    assert 45 <= retry_delay(3, 30, 3600, 0.5) <= 120


EVENT = {"project_id": "shop", "run_id": "run_1", "seq": 4, "at": "2026-11-30T10:00:00.000000Z",
         "actor": "human:alice", "action": "approval.requested", "entity": "run:run_1",
         "data": {"gate": "deploy", "note": "<!channel> see <https://evil.example|here> & more"}}


def test_the_baton_body_carries_the_contract_fields():
    body = json.loads(delivery_body("dlv_x", EVENT, "baton"))
    assert {"delivery_id", "action", "at", "project_id", "run_id", "seq", "data"} <= set(body)
    assert (body["delivery_id"], body["seq"], body["data"]["gate"]) == ("dlv_x", 4, "deploy")


def test_a_slack_body_is_one_line_of_text_that_pings_nobody_and_links_nothing():
    body = json.loads(delivery_body("dlv_x", EVENT, "slack", project_name="Shop"))
    assert set(body) == {"text"}
    text = body["text"]
    assert "approval.requested" in text and "run_1" in text and "[Shop]" in text and "gate: deploy" in text
    assert "<" not in text and ">" not in text and "&lt;!channel&gt;" in text and "&amp;" in text
    assert "\n" not in text


def test_an_event_too_large_for_eventbridge_is_published_with_a_marker():
    big = {**EVENT, "data": {"notes": "x" * (events.MAX_DETAIL_BYTES + 10)}}
    shaped = events.published(big, "shop", "run_1")
    assert shaped["data"]["truncated"] is True and "GET /runs/run_1/events?after=3" in shaped["data"]["note"]
    assert events.published(EVENT, "shop", "run_1")["data"] == EVENT["data"]


def test_a_new_secret_is_long_and_recognisable():
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and len(secret) >= 40 and secret != webhooks.new_secret()
