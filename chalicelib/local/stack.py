"""The local stack: Baton on one machine, against moto, started by one command (``make up``).

This module orchestrates; the parts are their own modules. It starts, on 127.0.0.1:
* a moto server with Step Functions execution switched on (``MOTO_PORT`` set first, so the ASL
  interpreter's SQS calls reach it), and the resources of ``infra/`` created in it (``resources``);
* the API under Chalice's local server, in this process (``api_server``);
* an SQS pump that feeds dispatch messages to the same ``dispatch`` handler Lambda runs (``pump``),
  and another that feeds the webhook queue's messages to the ``webhooks`` handler (webhook
  deliveries; receivers on 127.0.0.1/localhost are allowed here, and only here);
* a stream pump that reads the table's DynamoDB Stream and feeds new publish outbox records to the
  ``publish`` handler, as Lambda's event source mapping does on AWS (``stream_pump``): events leave
  within about 0.2 s of their commit, off the request path;
* the sweeper on a short schedule; and the local executor, which runs agent jobs as subprocesses
  (each gets the API URL from its launch spec).

The services are built once from a ``Settings`` the stack makes (moto's endpoint and placeholder
credentials, the resources' names, the API URL) and installed with ``bootstrap.reset_services``:
the API, the pump's dispatcher and the sweeper all take them from ``bootstrap.get_services()``.

It prints the API URL, the dashboard's URL (``/ui``), an admin key and its own start-up time, and
writes the URL and the key to ``.baton/config.json`` for the CLI. Ctrl-C stops everything it started.

Its data outlives it (``make up``; a ``LocalStack`` keeps nothing unless given a ``state_dir``): stopping
(Ctrl-C or SIGTERM) saves the tables' items, the proof bucket's object versions, the queues' messages
and the admin key under ``.baton/state/`` (``snapshot``: format, atomicity), and starting restores them
before the API answers, so the printed admin key stays the same. Step Functions executions cannot be
saved: after a restore the stack asks the sweeper's reconciler, when there is one, to restart those of
tasks and gates that were in flight. ``make up FRESH=1`` (``baton up --fresh``) starts empty; its state
replaces the saved one when it stops. A snapshot that cannot be loaded stops the start, saying why.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

from ..config import Settings
from . import snapshot as snapshots
from .api_server import local_api_server
from .pump import SqsPump
from .resources import LocalResources, create_local_resources
from .stream_pump import StreamPump, streams_client

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# moto takes any credentials; these keep a developer's own out of the local stack's clients.
LOCAL_CREDENTIALS = {
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",  # nosec B105  # moto's placeholder credentials, local only
}
log = logging.getLogger("baton.local")


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds a key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)   # an existing file keeps its mode through O_CREAT: set it
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def forget_process_state() -> None:
    """What a stack leaves in the process that would point a second one at the first one's moto:
    the dispatcher's idempotency-wrapped handler and the API's idempotency layers (boto3 clients)."""
    from .. import workers
    from ..api import idempotency

    workers._idempotent_handler = None
    idempotency.reset()


class Periodic(threading.Thread):
    """Runs ``action`` every ``interval`` seconds until stopped: the sweeper's schedule (a rate rule
    in the cloud)."""

    def __init__(self, interval: float, action: Any, name: str):
        super().__init__(daemon=True, name=name)
        self.interval = interval
        self.action = action
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.action()
            except Exception:
                log.exception("%s failed", self.name)


class LocalStack:
    """Everything ``make up`` runs, startable from tests too (``with LocalStack() as stack``)."""

    def __init__(self, *, moto_port: int = 0, api_port: int = 0, workdir: Optional[Path] = None,
                 prefix: str = "baton-local", visibility_timeout: int = 30, sweep_seconds: float = 5.0,
                 max_attempts: int = 3, write_config: bool = True, state_dir: Optional[Path] = None,
                 fresh: bool = False, snapshot_grace_seconds: float = 5.0,
                 webhook_retry_base_seconds: Optional[float] = None):
        self.moto_port = moto_port or free_port()
        self.api_port = api_port or free_port()
        self.workdir = Path(workdir or ROOT / ".baton")
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.sweep_seconds = sweep_seconds
        self.max_attempts = max_attempts
        self.write_config = write_config
        # Durable state (None: the stack forgets everything when it stops, as the tests' stacks do).
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.fresh = fresh
        self.snapshot_grace_seconds = snapshot_grace_seconds
        # None: the operator's (BATON_WEBHOOK_RETRY_BASE_SECONDS, default 30 s); tests use ~1 s.
        self.webhook_retry_base_seconds = webhook_retry_base_seconds
        self.restored: Optional[snapshots.Summary] = None     # what start() restored
        self.saved: Optional[snapshots.Summary] = None        # what stop() saved
        self.reconciled: Any = None                           # what the reconciler answered after a restore
        self.notes: list[str] = []                            # what the operator should know (printed by main)
        self._save_on_stop = False
        self._state_lock: Optional[snapshots.StateLock] = None
        self._clients: dict[str, Any] = {}
        self.moto: Any = None
        self.api_server: Any = None
        self.threads: list[threading.Thread] = []
        self.services: Any = None
        self.resources: Optional[LocalResources] = None
        self.admin_key = ""
        self.startup_seconds = 0.0
        self._saved_env: dict[str, Optional[str]] = {}

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dashboard_url(self) -> str:
        return f"{self.api_url}/ui"

    def settings(self, resources: Optional[LocalResources] = None) -> Settings:
        """What the services are built from: the operator's tunables from the environment (e.g.
        ``BATON_PROOF_SIZE_LIMITS``), wired to this stack's moto and, when given, its resources."""
        connection = replace(Settings.from_env(), region=REGION, aws_endpoint_url=self.moto_url, **LOCAL_CREDENTIALS)
        if resources is None:
            return connection
        webhooks = {} if self.webhook_retry_base_seconds is None else \
            {"webhook_retry_base_seconds": self.webhook_retry_base_seconds}
        return replace(connection, stage="local", orchestration="stepfunctions", launcher="local",
                       table_name=resources.table_name, idempotency_table=resources.idempotency_table_name,
                       bucket=resources.bucket, dispatch_queue_url=resources.dispatch_queue_url,
                       task_state_machine_arn=resources.task_state_machine_arn,
                       run_state_machine_arn=resources.run_state_machine_arn,
                       api_url=self.api_url, workdir=str(self.workdir), max_attempts=self.max_attempts,
                       event_bus=resources.event_bus_name, webhook_queue_url=resources.webhook_queue_url,
                       webhook_allow_loopback=True, **webhooks)

    def _set_process_environment(self) -> None:
        """What cannot be passed in, because code outside the stack reads it from this process's
        environment (stop() restores the previous values):

        * ``MOTO_PORT``: moto's Step Functions interpreter, in this process, calls back into moto at
          ``localhost:$MOTO_PORT`` (moto.settings.moto_server_port; default 5000).
        * ``AWS_ENDPOINT_URL``, the credentials and the region: powertools' idempotency persistence
          layers (``api/idempotency.py``, ``workers.py``) make their own boto3 clients from botocore's
          default chain, not through bootstrap. A developer's session token or profile is removed
          so that it cannot mix with the placeholder credentials.
        """
        values = {"MOTO_PORT": str(self.moto_port), "AWS_ENDPOINT_URL": self.moto_url,
                  "AWS_ACCESS_KEY_ID": LOCAL_CREDENTIALS["aws_access_key_id"],
                  "AWS_SECRET_ACCESS_KEY": LOCAL_CREDENTIALS["aws_secret_access_key"],
                  "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            self._saved_env.setdefault(name, os.environ.pop(name, None))

    def start(self) -> "LocalStack":
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Read and check the saved state before anything starts: one that cannot be loaded stops the
        # start here (SnapshotError), and is left as it is for the operator to look at. The state is
        # this stack's alone until it stops (StateInUse for a second one).
        saved = None
        if self.state_dir is not None:
            self._state_lock = snapshots.StateLock(self.state_dir).acquire()
            saved = None if self.fresh else snapshots.load(self.state_dir)
        self._set_process_environment()
        from moto.server import ThreadedMotoServer

        from .moto_fidelity import patched_moto

        # moto's transactions are neither isolated nor cheap under threads, and its queries walk the
        # whole table; see moto_fidelity.
        self._fidelity = patched_moto()
        self._fidelity.__enter__()

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's and the API's request lines

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.moto_port, verbose=False)
        self.moto.start()
        request = urllib.request.Request(f"{self.moto_url}/moto-api/config", method="POST",
                                         data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()  # nosec B310  # fixed http://127.0.0.1 URL

        from .. import bootstrap

        connection = self.settings()
        self._clients = {service: bootstrap.client(service, connection)
                         for service in ("dynamodb", "s3", "sqs", "stepfunctions", "events")}
        self.resources = create_local_resources(self._clients, prefix=self.prefix,
                                                visibility_timeout=self.visibility_timeout)
        forget_process_state()
        self.services = bootstrap.build_services(self.settings(self.resources))
        bootstrap.reset_services(self.services)
        if saved is not None:
            self._restore(saved)
        self.services.roles.active_all()  # seed the default role configs (those a snapshot did not bring)
        self.admin_key = self._admin_key(saved)

        sys.path.insert(0, str(ROOT))
        import app as app_module
        from chalice.config import Config

        config = Config.create(chalice_stage="local", app_name="baton", lambda_timeout=60)
        self.api_server = local_api_server(app_module.app, config, "127.0.0.1", self.api_port)
        api_thread = threading.Thread(target=self.api_server.server.serve_forever, daemon=True, name="api")
        api_thread.start()
        pump = SqsPump(bootstrap.client("sqs", self.services.settings), self.resources.dispatch_queue_url,
                       self.resources.dispatch_queue_arn, app_module.dispatch)
        pump.start()
        # Deliveries that failed stay invisible for their backoff, as the handler set it: no retry_after.
        webhook_pump = SqsPump(bootstrap.client("sqs", self.services.settings), self.resources.webhook_queue_url,
                               self.resources.webhook_queue_arn, app_module.webhooks, retry_after_seconds=None,
                               name="webhook-pump")
        webhook_pump.start()
        threads = [api_thread, pump, webhook_pump]
        settings = self.services.settings
        if self.services.publishes and not settings.publishes_in_request and self.resources.table_stream_arn:
            # Made after the restore: it starts at LATEST, so restored outbox records are the sweeper's.
            stream_pump = StreamPump(streams_client(settings), self.resources.table_stream_arn, app_module.publish)
            stream_pump.start()
            threads.append(stream_pump)
        from ..workers import sweep_once

        sweeper = Periodic(self.sweep_seconds, sweep_once, "sweeper")
        sweeper.start()
        self.threads = [*threads, sweeper]
        self._wait_for_api()
        if self.restored is not None:
            self.reconciled = self._reconcile()
        self._save_on_stop = self.state_dir is not None
        if self.write_config:
            write_private(self.workdir / "config.json",
                          json.dumps({"api_url": self.api_url, "api_key": self.admin_key}, indent=2))
        self.startup_seconds = time.monotonic() - began
        return self

    def _restore(self, saved: snapshots.Snapshot) -> None:
        """Put the saved state into this stack's new moto (before the API answers)."""
        try:
            self.restored = snapshots.restore(saved, self._clients, snapshots.discover(self._clients, self.prefix),
                                              pin_version=snapshots.moto_version_pinner(self._account_id()))
        except snapshots.SnapshotError:
            raise
        except Exception as error:
            raise snapshots.SnapshotError(f"restoring the snapshot {saved.path} failed: "
                                          f"{type(error).__name__}: {error}") from error

    def _account_id(self) -> str:
        if self.resources is None:
            raise RuntimeError("the stack's resources are not created yet")
        return self.resources.dispatch_queue_arn.split(":")[4]

    def _admin_key(self, saved: Optional[snapshots.Snapshot]) -> str:
        """The saved admin key when it still authenticates (its hash came back with the table), else a
        new one. Without a snapshot, a new one."""
        if saved is not None and saved.admin_key:
            try:
                self.services.keys.authenticate(f"Bearer {saved.admin_key}")
                return saved.admin_key
            except Exception as error:   # revoked, or its item is gone: say so, issue another
                self.notes.append(f"the saved admin key no longer works ({error}); a new one was issued")
        elif saved is not None:
            self.notes.append("the snapshot holds no admin key; a new one was issued")
        return self.services.keys.bootstrap_admin("local-admin")[1]

    def _reconcile(self) -> Any:
        """After a restore: the executions of Step Functions were not saved; the sweeper's reconciler
        (when this version has one) restarts those of the tasks and gates that were in flight."""
        reconcile = getattr(self.services.sweeper, "reconcile", None)
        if not callable(reconcile):
            self.notes.append("no reconciler in this version: runs that were in flight wait until their "
                              "executions are restarted")
            return None
        try:
            return reconcile()
        except Exception as error:
            log.exception("the reconciler failed after the restore")
            self.notes.append(f"the reconciler failed after the restore ({type(error).__name__}: {error}); the "
                              "sweeper tries again on its schedule")
            return None

    def save_state(self) -> snapshots.Summary:
        """Snapshot what moto holds now under ``state_dir`` (atomically). ``stop`` calls it once the API,
        the pump, the sweeper and the agents have stopped, and before moto stops."""
        if self.state_dir is None:
            raise RuntimeError("a stack without a state_dir keeps nothing")
        return snapshots.save(self.state_dir, self._clients, snapshots.discover(self._clients, self.prefix),
                              admin_key=self.admin_key, grace_seconds=self.snapshot_grace_seconds,
                              info={"prefix": self.prefix, "api_url": self.api_url})

    def _wait_for_api(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                urllib.request.urlopen(f"{self.api_url}/status", timeout=2).read()  # nosec B310  # fixed http://127.0.0.1 URL
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        for thread in self.threads:
            stopping = getattr(thread, "stopping", None)
            if stopping is not None:
                stopping.set()
        if self.services is not None:
            stop_all = getattr(self.services.launcher, "stop_all", None)
            if stop_all:
                stop_all()
        if self.api_server is not None:
            self.api_server.server.shutdown()
            self.api_server.server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)
        save_error: Optional[BaseException] = None
        if self._save_on_stop:
            self._save_on_stop = False
            try:
                self.saved = self.save_state()
            except BaseException as error:   # also a second Ctrl-C: the previous snapshot stays current
                save_error = error
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if getattr(self, "_fidelity", None) is not None:
            self._fidelity.__exit__(None, None, None)
            self._fidelity = None
        if self._state_lock is not None:
            self._state_lock.release()
            self._state_lock = None
        from .. import bootstrap

        bootstrap.reset_services(None)
        forget_process_state()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if save_error is not None:
            reason = "interrupted" if isinstance(save_error, KeyboardInterrupt) else \
                f"{type(save_error).__name__}: {save_error}"
            raise snapshots.SnapshotError(f"the state was not saved ({reason}); the previous snapshot in "
                                          f"{self.state_dir} is kept") from save_error

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def describe_state(stack: LocalStack) -> list[str]:
    """What ``main`` prints about the saved state once the stack is up."""
    if stack.state_dir is None:
        return []
    if stack.restored is not None:
        lines = [f"  state      restored from {stack.restored.path} in {stack.restored.seconds:.1f}s: {stack.restored}"]
    elif stack.fresh:
        lines = [f"  state      empty (--fresh: what is saved in {stack.state_dir} is replaced when this stack stops)"]
    else:
        lines = [f"  state      empty (nothing saved yet); saved in {stack.state_dir} when the stack stops"]
    reconciled = stack.reconciled
    if isinstance(reconciled, (int, float)) and not isinstance(reconciled, bool):
        lines.append(f"  reconciler restarted the executions of {reconciled:g} task(s)/gate(s) that were in flight")
    elif isinstance(reconciled, dict) and reconciled and all(isinstance(v, (int, float)) for v in reconciled.values()):
        counts = ", ".join(f"{name} {count:g}" for name, count in reconciled.items())
        lines.append(f"  reconciler restarted the executions in flight: {counts}")
    lines += [f"  note:      {note}" for note in stack.notes]
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``make up`` / ``baton up``: ``argv`` are this module's options (none when called as a function)."""
    parser = argparse.ArgumentParser(prog="python -m chalicelib.local.stack",
                                     description="Run Baton's local stack in the foreground (make up).")
    parser.add_argument("--fresh", action="store_true",
                        help="start empty instead of restoring the saved state (make up FRESH=1); what is saved "
                             "is replaced when this stack stops")
    parser.add_argument("--state-dir", type=Path, default=None, metavar="DIR",
                        help="where the state is saved and restored from (default: .baton/state)")
    args = parser.parse_args(list(argv) if argv is not None else [])
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # BATON's JSON logs: set INFO to see every request
    api_port = int(os.environ.get("BATON_API_PORT", "8000"))
    state_dir = args.state_dir or ROOT / ".baton" / "state"
    stack = LocalStack(api_port=api_port, visibility_timeout=30, sweep_seconds=5, state_dir=state_dir,
                       fresh=args.fresh)
    try:
        stack.start()
    except snapshots.StateInUse as error:
        print(f"baton: {error}", file=sys.stderr)
        stack.stop()
        return 1
    except snapshots.SnapshotError as error:
        print(f"baton: the saved state could not be loaded: {error}.\n"
              f"Nothing was started and the saved state was left as it is. To start empty instead, run "
              f"{snapshots.FRESH_HINT}: the saved state is then replaced when that stack stops.", file=sys.stderr)
        stack.stop()
        return 1
    except Exception as error:
        print(f"baton: the local stack could not start: {error}", file=sys.stderr)
        stack.stop()
        return 1
    print(f"Baton local stack ready in {stack.startup_seconds:.1f}s")
    print(f"  API        {stack.api_url}")
    print(f"  dashboard  {stack.dashboard_url}  (sign in with a key: the admin key below, or a human key to approve gates)")
    print(f"  admin key  {stack.admin_key}")
    print(f"  moto       {stack.moto_url}  (AWS_ENDPOINT_URL for the aws CLI / boto3)")
    print(f"  config     {stack.workdir / 'config.json'}  (read by the baton CLI)")
    for line in describe_state(stack):
        print(line)
    print("  try:       .venv/bin/baton demo     (in another terminal; Ctrl-C here stops everything)")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    print(f"\nstopping the local stack and saving its state in {state_dir} ... (Ctrl-C again abandons the save; "
          "the previous snapshot is kept)", flush=True)
    try:
        stack.stop()
    except KeyboardInterrupt:
        print("baton: interrupted: the state was not saved; the previous snapshot is kept", file=sys.stderr)
        return 1
    except snapshots.SnapshotError as error:
        print(f"baton: {error}", file=sys.stderr)
        return 1
    if stack.saved is not None:
        print(f"state saved in {stack.saved.path} in {stack.saved.seconds:.1f}s: {stack.saved}")
        for warning in stack.saved.warnings:
            print(f"  warning: {warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
