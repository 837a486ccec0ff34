"""The sweeper delivers only callbacks that have waited past their grace: a younger one is most
likely being delivered by the request that committed it, and sending it twice would waste a call."""

from __future__ import annotations

from chalicelib.domain import clock
from chalicelib.domain.messages import Enqueue, FillMessage


def pending_ids(services) -> set[str]:
    return {item["id"] for item in services.repos.outbox.pending(100)}


def test_the_sweeper_leaves_young_callbacks_to_their_request_and_delivers_old_ones(services):
    young = Enqueue(body=FillMessage(run_id="run_young"))
    old = Enqueue(body=FillMessage(run_id="run_old"), created_at=clock.plus_seconds(clock.now_iso(), -31))
    services.repos.table.transact([services.repos.outbox.put_op(young), services.repos.outbox.put_op(old)])
    assert pending_ids(services) == {young.id, old.id}

    result = services.sweeper.sweep_once()

    assert result["delivered"] == 1
    assert pending_ids(services) == {young.id}


def test_without_a_grace_everything_pending_is_delivered(services):
    young = Enqueue(body=FillMessage(run_id="run_young"))
    services.repos.table.transact([services.repos.outbox.put_op(young)])
    assert services.outbox.sweep(100, min_age_seconds=0) == 1
    assert pending_ids(services) == set()
