"""The local stack's stream pump plays Lambda's event source mapping on the table's stream: it starts
at LATEST when made, keeps what the filter keeps, retries a batch its handler raises on a bounded
number of times and then skips it (the records stay in the table for the sweeper)."""

from __future__ import annotations

from chalicelib.domain.requests import ProjectCreate, RunCreate
from chalicelib.local.stream_pump import StreamPump, streams_client
from tests.support.big_run import parse
from tests.support.events import publishing_services


def start_run(stack, tasks: int = 1):
    services = stack.services
    admin = services.keys.authenticate("Bearer " + services.keys.bootstrap_admin()[1])
    services.projects.create(admin, ProjectCreate(id="shop", name="Shop", repository_url="https://example.com/s.git"))
    return services.runs.start(admin, "shop", parse(RunCreate, title="r", tasks=[{"title": f"t{i}"}
                                                                               for i in range(tasks)]))


def test_a_pump_made_after_some_writes_sees_only_the_later_ones():
    with publishing_services() as stack:
        start_run(stack)
        seen: list[dict] = []
        later = StreamPump(streams_client(stack.services.settings), stack.resources.table_stream_arn,
                           lambda event, context: seen.extend(event["Records"]))
        while later.pump_once():
            pass
        assert seen == []   # the run's records were written before: LATEST skips them
        stack.services.runs.start(stack.services.keys.authenticate(
            "Bearer " + stack.services.keys.bootstrap_admin("second")[1]), "shop",
            parse(RunCreate, title="again", tasks=[{"title": "t"}]))
        while later.pump_once():
            pass
        assert sorted(r["dynamodb"]["NewImage"]["events"]["L"][0]["M"]["action"]["S"] for r in seen) == \
            ["run.created", "run.started"]


def test_a_batch_the_handler_keeps_failing_is_retried_then_skipped_and_stays_for_the_sweeper():
    with publishing_services() as stack:
        calls: list[int] = []

        def broken(event, context):
            calls.append(len(event["Records"]))
            raise RuntimeError("the publish function crashed")

        pump = StreamPump(streams_client(stack.services.settings), stack.resources.table_stream_arn, broken,
                          max_retries=2)
        start_run(stack)
        while pump.pump_once():
            pass
        assert calls == [2, 2, 2]   # the first attempt and two retries of the same batch
        assert pump.failed_batches == 1 and pump.batches == 0
        assert len(stack.services.repos.outbox.pending(100)) == 2   # nothing was lost: the sweeper's now
        calls.clear()
        assert pump.pump_once() == 0 and calls == []                # and the pump went on past it
