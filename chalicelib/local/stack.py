"""The local stack: Baton on one machine, against moto, started by one command (``make up``).

This module orchestrates; the parts are their own modules. It starts, on 127.0.0.1:
* a moto server with Step Functions execution switched on (``MOTO_PORT`` set first, so the ASL
  interpreter's SQS calls reach it), and the resources of ``infra/`` created in it (``resources``);
* the API under Chalice's local server, in this process (``api_server``);
* an SQS pump that feeds dispatch messages to the same ``dispatch`` handler Lambda runs (``pump``);
* the sweeper on a short schedule; and the local executor, which runs agent jobs as subprocesses
  (each gets the API URL from its launch spec).

The services are built once from a ``Settings`` the stack makes (moto's endpoint and placeholder
credentials, the resources' names, the API URL) and installed with ``bootstrap.reset_services``:
the API, the pump's dispatcher and the sweeper all take them from ``bootstrap.get_services()``.

It prints the API URL, the dashboard's URL (``/ui``), an admin key and its own start-up time, and
writes the URL and the key to ``.baton/config.json`` for the CLI. Ctrl-C stops everything it started.
"""

from __future__ import annotations

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
from typing import Any, Optional

from ..config import Settings
from .api_server import local_api_server
from .pump import SqsPump
from .resources import LocalResources, create_local_resources

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
                 max_attempts: int = 3, write_config: bool = True):
        self.moto_port = moto_port or free_port()
        self.api_port = api_port or free_port()
        self.workdir = Path(workdir or ROOT / ".baton")
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.sweep_seconds = sweep_seconds
        self.max_attempts = max_attempts
        self.write_config = write_config
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
        return replace(connection, stage="local", orchestration="stepfunctions", launcher="local",
                       table_name=resources.table_name, idempotency_table=resources.idempotency_table_name,
                       bucket=resources.bucket, dispatch_queue_url=resources.dispatch_queue_url,
                       task_state_machine_arn=resources.task_state_machine_arn,
                       run_state_machine_arn=resources.run_state_machine_arn,
                       api_url=self.api_url, workdir=str(self.workdir), max_attempts=self.max_attempts)

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
        self._set_process_environment()
        from moto.server import ThreadedMotoServer

        from .moto_fidelity import atomic_transactions

        # moto's transactions are neither isolated nor cheap under threads; see moto_fidelity.
        self._fidelity = atomic_transactions()
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
        self.resources = create_local_resources({service: bootstrap.client(service, connection)
                                                 for service in ("dynamodb", "s3", "sqs", "stepfunctions")},
                                                prefix=self.prefix, visibility_timeout=self.visibility_timeout)
        forget_process_state()
        self.services = bootstrap.build_services(self.settings(self.resources))
        bootstrap.reset_services(self.services)
        self.services.roles.active_all()  # seed the default role configs
        self.admin_key = self.services.keys.bootstrap_admin("local-admin")[1]

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
        from ..workers import sweep_once

        sweeper = Periodic(self.sweep_seconds, sweep_once, "sweeper")
        sweeper.start()
        self.threads = [api_thread, pump, sweeper]
        self._wait_for_api()
        if self.write_config:
            write_private(self.workdir / "config.json",
                          json.dumps({"api_url": self.api_url, "api_key": self.admin_key}, indent=2))
        self.startup_seconds = time.monotonic() - began
        return self

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
        if self.moto is not None:
            self.moto.stop()
        if getattr(self, "_fidelity", None) is not None:
            self._fidelity.__exit__(None, None, None)
            self._fidelity = None
        from .. import bootstrap

        bootstrap.reset_services(None)
        forget_process_state()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # BATON's JSON logs: set INFO to see every request
    api_port = int(os.environ.get("BATON_API_PORT", "8000"))
    stack = LocalStack(api_port=api_port, visibility_timeout=30, sweep_seconds=5)
    try:
        stack.start()
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
    print("  try:       .venv/bin/baton demo     (in another terminal; Ctrl-C here stops everything)")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    print("\nstopping the local stack ...")
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
