"""What every bench needs: an environment that can only reach moto, Baton in-process on moto
(``InProcess``) or the whole local stack (``local_stack``), both metered (``bench/meter.py``), and
small statistics. The benches use Baton through its HTTP API and its wiring point
(``bootstrap.build_services``), so they survive refactors of the layers below.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.meter import AwsMeter, Call, Invocation, LambdaMeter  # noqa: E402

# moto's placeholder credentials: nothing here can reach AWS.
IN_PROCESS_ENV = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",  # nosec B105
                  "AWS_ACCESS_KEY_ID": "testing",
                  "AWS_SECRET_ACCESS_KEY": "testing", "POWERTOOLS_LOG_LEVEL": "ERROR", "BATON_STAGE": "bench"}


def isolate_environment() -> None:
    """Never a real AWS endpoint or credential: moto in-process intercepts everything."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.update(IN_PROCESS_ENV)


# --------------------------------------------------------------------------- statistics

def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def scans(calls: list[Call]) -> list[Call]:
    return [c for c in calls if c.service == "dynamodb" and c.operation == "Scan"]


def report_scans(where: list[str]) -> int:
    """The exit status of a bench: 2, with a banner, when a request scanned the table."""
    if not where:
        print("\nNo Scan anywhere.")
        return 0
    print("\n" + "!" * 72 + f"\n!! SCAN in: {', '.join(sorted(set(where)))}\n!! The store must read with "
          "GetItem/Query only; a Scan reads the whole table.\n" + "!" * 72)
    return 2


def print_table(header: list[str], rows: list[list[Any]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def record_summary(bench: str, rows: list[dict[str, Any]]) -> None:
    """Headline figures for ``bench/run_all.py``'s closing table (``BENCH_SUMMARY`` names the file)."""
    path = os.environ.get("BENCH_SUMMARY")
    if path:
        with open(path, "a") as handle:
            for row in rows:
                handle.write(json.dumps({"bench": bench, **row}) + "\n")


# --------------------------------------------------------------------------- the API, in-process

class Response:
    def __init__(self, status: int, body: Any, invocation: Optional[Invocation]):
        self.status = status
        self.body = body
        self.invocation = invocation

    @property
    def calls(self) -> list[Call]:
        return self.invocation.calls if self.invocation else []


class CapturingLauncher:
    """Stands in for the local launcher: keeps each container job's spec (launch code included)
    instead of starting a runner, so a bench can play the runner through the API."""

    def __init__(self) -> None:
        self.specs: list[dict[str, Any]] = []

    def launch(self, spec: dict[str, Any]) -> str:
        self.specs.append(spec)
        return f"bench-{len(self.specs)}"


class InProcess:
    """Baton on moto in this process, Step Functions executing, every client metered.

    ``orchestration="stepfunctions"`` is how Baton runs on AWS: executions dispatch stage jobs to
    SQS, and ``pump()`` plays the Lambda event source (the local stack's ``SqsPump``).
    ``orchestration="plain"``: tasks are claimable as soon as they are written (no executions).
    """

    def __init__(self, orchestration: str = "stepfunctions", launcher: Any = None, dynamo_units: bool = True):
        self.orchestration = orchestration
        self.launcher = launcher or CapturingLauncher()
        self.meter = AwsMeter(dynamo_units=dynamo_units)
        self.lambdas = LambdaMeter(self.meter)
        self._exit = ExitStack()

    def __enter__(self) -> "InProcess":
        isolate_environment()
        from moto import mock_aws

        self.meter.install()
        self._exit.callback(self.meter.uninstall)
        self._exit.enter_context(mock_aws(config={"stepfunctions": {"execute_state_machine": True}}))
        self._exit.enter_context(atomic_transactions())
        import boto3

        from chalicelib import bootstrap
        from chalicelib.config import Settings
        from chalicelib.local.resources import create_local_resources

        self.resources = create_local_resources(boto3.session.Session(), prefix="baton-bench")
        os.environ.update(self.resources.env(stage="bench", orchestration=self.orchestration))
        self.services = bootstrap.build_services(Settings.from_env(), launcher=self.launcher)
        bootstrap.reset_services(self.services)
        self._exit.callback(bootstrap.reset_services, None)
        import app as app_module
        from chalice.test import Client

        self.app = app_module
        self.lambdas.install(app_module.app)
        self.client = self._exit.enter_context(Client(app_module.app))
        self.admin_key = self.services.keys.bootstrap_admin("bench-admin")[1]
        self._pump = SqsPump(boto3.session.Session().client("sqs"), self.resources.dispatch_queue_url,
                             self.resources.dispatch_queue_arn, app_module.dispatch)
        # The table's stream, read as Lambda's event source mapping would (from LATEST, now), into
        # the publish function: what leaves after a commit, off the request path (``publish()``).
        from chalicelib.local.stream_pump import StreamPump, streams_client

        self._stream = StreamPump(streams_client(self.services.settings), self.resources.table_stream_arn,
                                  app_module.publish) if self.resources.table_stream_arn else None
        self.meter.take()
        self.lambdas.take()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._exit.close()

    def request(self, method: str, path: str, body: Any = None, key: Optional[str] = None,
                headers: Optional[dict[str, str]] = None) -> Response:
        """One HTTP request through the Chalice app; the response carries its Lambda invocation."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        key = self.admin_key if key is None else key
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        self.lambdas.take()
        raw = getattr(self.client.http, method.lower())(path, headers=all_headers,
                                                        body=json.dumps(body) if body is not None else None)
        invocations = [i for i in self.lambdas.take() if i.function == "api_handler"]
        body_out = json.loads(raw.body) if raw.body else None
        return Response(raw.status_code, body_out, invocations[-1] if invocations else None)

    def ok(self, method: str, path: str, body: Any = None, key: Optional[str] = None, expect: int = 200,
           headers: Optional[dict[str, str]] = None) -> Response:
        response = self.request(method, path, body, key, headers)
        if response.status != expect:
            raise SystemExit(f"{method} {path}: expected {expect}, got {response.status}: {response.body}")
        return response

    def pump(self, quiet_seconds: float = 0.3, timeout: float = 30.0) -> int:
        """Feed the dispatch queue to the dispatcher until it stays empty for ``quiet_seconds``
        (Step Functions executions send asynchronously, from moto's threads)."""
        delivered, quiet_since, deadline = 0, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self._pump.pump_once(wait_seconds=0)
            delivered += n
            if n:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_seconds:
                break
            else:
                time.sleep(0.02)
        return delivered

    def publish(self) -> list[Invocation]:
        """Play the stream's event source until it has nothing new; the publish function's invocations
        (other invocations made meanwhile are dropped, as ``request`` drops them)."""
        self.lambdas.take()
        while self._stream is not None and self._stream.pump_once():
            pass
        return [i for i in self.lambdas.take() if i.function == "publish"]

    def until(self, attempt: Callable[[], Optional[Response]], timeout: float = 30.0) -> Response:
        """Pump and retry ``attempt`` until it returns a response (it returns None to go on)."""
        deadline = time.monotonic() + timeout
        while True:
            result = attempt()
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the dispatcher")
            self.pump(quiet_seconds=0.05, timeout=2)


# --------------------------------------------------------------------------- the local stack

@contextmanager
def local_stack(meter: Optional[AwsMeter] = None, lambdas: Optional[LambdaMeter] = None,
                **options: Any) -> Iterator[Any]:
    """``chalicelib.local.stack.LocalStack`` (moto server, API, SQS pump, sweeper, local executor),
    with every botocore client of this process metered when ``meter`` is given."""
    import logging
    import tempfile
    from http.server import BaseHTTPRequestHandler

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    logging.getLogger("baton.local").setLevel(logging.ERROR)
    with ExitStack() as exit_stack:
        # The local API server's one line per request, on stderr: noise in a bench's output.
        quiet = BaseHTTPRequestHandler.log_message
        BaseHTTPRequestHandler.log_message = lambda *args, **kwargs: None  # type: ignore[method-assign]
        exit_stack.callback(setattr, BaseHTTPRequestHandler, "log_message", quiet)
        if meter is not None:
            meter.install()
            exit_stack.callback(meter.uninstall)
        if lambdas is not None:
            import app as app_module

            lambdas.install(app_module.app)
        from chalicelib.local.stack import LocalStack

        workdir = Path(exit_stack.enter_context(tempfile.TemporaryDirectory(prefix="baton-bench-")))
        options = {"workdir": workdir, "prefix": "baton-bench", "write_config": False, **options}
        stack = exit_stack.enter_context(LocalStack(**options))
        yield stack


# --------------------------------------------------------------------------- moved modules

def _moved(*candidates: tuple[str, str]) -> Any:
    """The first importable ``(module, name)``: the local stack is being split into modules."""
    import importlib

    error: Optional[Exception] = None
    for module, name in candidates:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as missing:
            error = missing
    raise ImportError(f"none of {candidates} importable") from error


def atomic_transactions() -> Any:
    """moto as the local stack runs it (atomic transactions, and indexed queries where they exist)."""
    return _moved(("chalicelib.local.moto_fidelity", "patched_moto"),
                  ("chalicelib.local.moto_fidelity", "atomic_transactions"))()


def SqsPump(*args: Any, **kwargs: Any) -> Any:  # noqa: N802  (a class, wherever it lives)
    return _moved(("chalicelib.local.pump", "SqsPump"), ("chalicelib.local.stack", "SqsPump"))(*args, **kwargs)
