"""Run progress over HTTP: the bearer key's lookup, then the same single read as the service
(``tests/service/test_progress_cost.py``), for a run of a thousand tasks."""

from __future__ import annotations

from tests.support.big_run import big_run, linear_transactions  # noqa: F401  (fixtures)
from tests.support.round_trips import dynamodb_operations as dynamodb_calls


def test_progress_of_a_thousand_tasks_over_http_is_the_key_lookup_and_the_same_getitem(api, services, big_run):
    admin, run = big_run
    progress = services.runs.progress(admin, run.id)

    # over HTTP: the bearer key's lookup, then the same single read
    with dynamodb_calls(services.repos.client) as calls:
        response = api.get(f"/runs/{run.id}/progress")
    assert response.status_code == 200, response.data
    assert calls == ["GetItem", "GetItem"]
    assert response.data == progress.model_dump(mode="json")
