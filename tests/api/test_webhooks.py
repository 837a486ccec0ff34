"""The webhook endpoints over HTTP (``chalice.test.Client``): what a bad body changes (nothing),
where the secret appears (in the 201 only), who sees what, and the deliveries list."""

from __future__ import annotations

import json

import pytest

from chalicelib.domain.enums import PrincipalKind
from chalicelib.domain.requests import KeyCreate
from tests.support.api import Api, start_run
from tests.support.aws import backend_snapshot
from tests.support.events import publishing_services
from tests.support.receiver import Receiver

HOOK = "https://hooks.example.com/baton"


@pytest.fixture
def hooks_api(api, project):
    return api


def webhook(api: Api, body: dict, project_id: str = "demo", **kw):
    return api.post(f"/projects/{project_id}/webhooks", body, **kw)


@pytest.mark.parametrize("url,words", [
    ("https://169.254.169.254/latest/meta-data/iam/", "link-local"),
    ("http://hooks.example.com/baton", "https"),
    ("https://10.0.0.12/hook", "private"),
    ("https://192.168.0.10:8443/hook", "private"),
    ("https://[fd00::5]/hook", "private"),
    ("https://127.0.0.1/hook", "this machine"),
    ("http://127.0.0.1:9000/hook", "this machine"),
    ("https://localhost/hook", "this machine"),
    ("https://[::ffff:169.254.169.254]/hook", "link-local"),
])
def test_a_url_webhooks_may_not_reach_is_a_400_and_nothing_is_stored(hooks_api, services, url, words):
    before = backend_snapshot(services)
    response = webhook(hooks_api, {"url": url, "events": ["run.*"]})
    assert response.status_code == 400, response.data
    assert response.data["error"]["code"] in ("invalid_webhook_url", "invalid_body")
    assert words in json.dumps(response.data)
    assert backend_snapshot(services) == before


def test_a_host_that_resolves_to_a_private_address_is_refused(hooks_api, services):
    services.webhooks.resolver = lambda host, port: {"metadata.example.com": ["169.254.169.254"],
                                                     "internal.example.com": ["93.184.216.34", "10.1.2.3"]}.get(host, [])
    before = backend_snapshot(services)
    for host, words in (("metadata.example.com", "link-local"), ("internal.example.com", "10.1.2.3 is a private")):
        response = webhook(hooks_api, {"url": f"https://{host}/hook", "events": ["*"]})
        assert response.status_code == 400 and response.data["error"]["code"] == "invalid_webhook_url"
        assert host in response.data["error"]["message"] and words in response.data["error"]["message"]
    assert backend_snapshot(services) == before


@pytest.mark.parametrize("body", [
    {"url": HOOK, "events": ["run.*", "approval.requestd"]},
    {"url": HOOK, "events": ["deploys.*"]},
    {"url": HOOK, "events": []},
    {"url": HOOK},
    {"url": HOOK, "events": "run.*"},
    {"url": HOOK, "events": ["*"], "secret": "too-short"},
    {"url": HOOK, "events": ["*"], "format": "teams"},
    {"url": HOOK, "events": ["*"], "headers": {"x": "y"}},
    {"url": "https://user:pw@hooks.example.com/x", "events": ["*"]},
])
def test_a_bad_body_is_a_400_and_nothing_is_stored(hooks_api, services, body):
    before = backend_snapshot(services)
    response = webhook(hooks_api, body)
    assert response.status_code == 400, response.data
    assert response.data["error"]["code"] == "invalid_body"
    assert backend_snapshot(services) == before


def test_an_unknown_pattern_says_which_and_what_is_allowed(hooks_api):
    response = webhook(hooks_api, {"url": HOOK, "events": ["approval.requestd"]})
    message = json.dumps(response.data["error"]["details"])
    assert "approval.requestd" in message and "approval.requested" in message and "run.*" in message


def test_the_secret_is_shown_once_in_the_201_and_never_again(hooks_api):
    created = webhook(hooks_api, {"url": HOOK, "events": ["run.*", "approval.requested"]})
    assert created.status_code == 201, created.data
    secret = created.data["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    assert {k: created.data[k] for k in ("url", "events", "format")} == \
        {"url": HOOK, "events": ["run.*", "approval.requested"], "format": "baton"}
    given = webhook(hooks_api, {"url": HOOK + "/2", "events": ["*"], "secret": "my-own-secret-0123456789"})
    assert given.status_code == 201 and given.data["secret"] == "my-own-secret-0123456789"

    listed = hooks_api.get("/projects/demo/webhooks")
    assert listed.status_code == 200
    assert [h["id"] for h in listed.data["items"]] == [created.data["id"], given.data["id"]]
    assert all("secret" not in h for h in listed.data["items"])
    deliveries = hooks_api.get(f"/webhooks/{created.data['id']}/deliveries")
    removed = hooks_api.delete(f"/webhooks/{given.data['id']}")
    assert removed.status_code == 200 and removed.data["id"] == given.data["id"]
    for response in (listed, deliveries, removed):
        assert secret not in response.body.decode() and "my-own-secret" not in response.body.decode()
    assert [h["id"] for h in hooks_api.get("/projects/demo/webhooks").data["items"]] == [created.data["id"]]
    assert hooks_api.delete(f"/webhooks/{given.data['id']}").status_code == 404


def test_a_replayed_creation_does_not_show_the_secret_again(hooks_api):
    body = {"url": HOOK, "events": ["*"]}
    first = webhook(hooks_api, body, headers={"Idempotency-Key": "hook-create-0001"})
    again = webhook(hooks_api, body, headers={"Idempotency-Key": "hook-create-0001"})
    assert first.status_code == 201 and first.data["secret"]
    assert again.status_code == 409 and again.data["error"]["code"] == "secret_shown_once"
    assert first.data["secret"] not in again.body.decode()
    assert first.data["id"] in again.data["error"]["message"]
    assert len(hooks_api.get("/projects/demo/webhooks").data["items"]) == 1


def test_webhooks_are_for_the_project_s_humans_and_admins(hooks_api, services):
    created = webhook(hooks_api, {"url": HOOK, "events": ["*"]}).data
    agent = hooks_api.as_key(services.keys.issue(KeyCreate(name="bot", principal=PrincipalKind.agent,
                                                           project_ids=["demo"]), "test")[1])
    stranger = hooks_api.as_key(services.keys.issue(KeyCreate(name="eve", principal=PrincipalKind.human,
                                                              project_ids=["other"]), "test")[1])
    assert agent.get("/projects/demo/webhooks").status_code == 403
    assert agent.get(f"/webhooks/{created['id']}/deliveries").status_code == 403
    for response in (stranger.get("/projects/demo/webhooks"), stranger.delete(f"/webhooks/{created['id']}"),
                     stranger.get(f"/webhooks/{created['id']}/deliveries")):
        assert response.status_code == 404 and HOOK not in response.body.decode()
    assert hooks_api.get("/webhooks/whk_nope/deliveries").status_code == 404


def test_a_project_has_at_most_twenty_webhooks(hooks_api, services):
    for n in range(20):
        assert webhook(hooks_api, {"url": f"{HOOK}/{n}", "events": ["*"]}).status_code == 201
    before = backend_snapshot(services)
    refused = webhook(hooks_api, {"url": f"{HOOK}/21", "events": ["*"]})
    assert refused.status_code == 422 and refused.data["error"]["code"] == "too_many_webhooks"
    assert backend_snapshot(services) == before


# ---------------------------------------------------------------- deliveries, with a stack that publishes


@pytest.fixture
def publishing_api():
    from chalice.test import Client

    import app as app_module

    with publishing_services() as stack, Client(app_module.app) as client:
        api = Api(client, stack.services.keys.bootstrap_admin()[1])
        assert api.post("/projects", {"id": "demo", "name": "Demo",
                                      "repository_url": "https://example.com/demo.git"}).status_code == 201
        yield api, stack


def test_the_deliveries_list_shows_each_event_with_its_status_and_attempts(publishing_api):
    api, stack = publishing_api
    with Receiver(fail_first=1, fail_status=502) as receiver:
        hook = webhook(api, {"url": receiver.url, "events": ["run.*"]}).data
        run = start_run(api, tasks=1)
        stack.publish()   # the stream consumer fans the run's events out to the webhook queue
        stack.pump().pump_once()
        listed = api.get(f"/webhooks/{hook['id']}/deliveries")
        assert listed.status_code == 200
        by_seq = {d["event_seq"]: d for d in listed.data["items"]}
        assert set(by_seq) == {1, 2} and {d["action"] for d in by_seq.values()} == {"run.created", "run.started"}
        first = by_seq[1]
        assert (first["status"], first["attempts"], first["last_status_code"]) == ("pending", 1, 502)
        assert first["next_attempt_at"] > first["created_at"] and first["delivery_id"].startswith("dlv_")
        assert (by_seq[2]["status"], by_seq[2]["attempts"]) == ("pending", 0)

        stack.drain()
        items = api.get(f"/webhooks/{hook['id']}/deliveries").data["items"]
        assert [(d["event_seq"], d["status"], d["attempts"]) for d in items] == [(2, "delivered", 1),
                                                                                (1, "delivered", 2)]
        assert all(d["run_id"] == run["id"] and d.get("next_attempt_at") is None for d in items)
        page = api.get(f"/webhooks/{hook['id']}/deliveries?limit=1")
        assert len(page.data["items"]) == 1 and page.data["next_cursor"]
        rest = api.get(f"/webhooks/{hook['id']}/deliveries?limit=1&cursor={page.data['next_cursor']}")
        assert [d["event_seq"] for d in rest.data["items"]] == [1]
        assert api.get(f"/webhooks/{hook['id']}/deliveries?limit=0").status_code == 400
        assert api.get(f"/webhooks/{hook['id']}/deliveries?status=failed").status_code == 400
