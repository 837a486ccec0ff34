"""The one wiring point: builds AWS clients and services once per container (never per request,
never at import time, so tests and the local stack can point boto3 at moto first)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import boto3
from botocore.config import Config

from .adapters.dynamodb import Repositories, build_repositories
from .adapters.proofs_s3 import ProofStore
from .adapters.launchers import EcsLauncher, LocalLauncher
from .adapters.stepfunctions import DispatchQueue, StepFunctions
from .config import Settings
from .services.api_keys import KeyService
from .services.approvals import ApprovalService
from .services.attention import AttentionService
from .services.director import DirectorService
from .services.bugs import BugService
from .services.context import ContextService
from .services.dispatch import DispatchService
from .services.fix_tasks import FixTaskService
from .services.handoffs import HandoffService
from .services.outbox import Outbox
from .services.projects import ProjectService
from .services.proofs import ProofService
from .services.roles import RoleService
from .services.runs import RunService
from .services.state import StateService
from .services.sweeper import Sweeper
from .services.tasks import TaskService
from .services.usage import UsageService

CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=15, retries={"max_attempts": 4, "mode": "standard"},
                       max_pool_connections=50)


@dataclass
class Services:
    settings: Settings
    repos: Repositories
    keys: KeyService
    projects: ProjectService
    roles: RoleService
    runs: RunService
    tasks: TaskService
    approvals: ApprovalService
    outbox: Outbox
    dispatch: DispatchService
    launcher: Any
    proofs: ProofService
    handoffs: HandoffService
    fix_tasks: FixTaskService
    bugs: BugService
    context: ContextService
    director: DirectorService
    sweeper: Sweeper
    usage: UsageService
    attention: AttentionService
    state: StateService


_lock = threading.Lock()
_services: Optional[Services] = None


_session_lock = threading.Lock()
_session: Optional[boto3.session.Session] = None


def client(service: str, settings: Settings, config: Config = CLIENT_CONFIG):
    """The settings' endpoint and credentials when they name them (the local stack's moto), else
    botocore's own (deployed: the function's role).

    Every client comes from one boto3 session per process: a session loads botocore's service
    models once (a new session per client re-reads them, about 250 ms of a cold start). Sessions
    are not thread-safe, so clients are made under a lock; clients themselves are."""
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, region_name=settings.region, config=config,
                               endpoint_url=settings.aws_endpoint_url or None,
                               aws_access_key_id=settings.aws_access_key_id or None,
                               aws_secret_access_key=settings.aws_secret_access_key or None)


def s3_client(settings: Settings):
    """Presigned URLs need SigV4 (the proof bucket is KMS-encrypted)."""
    return client("s3", settings, CLIENT_CONFIG.merge(Config(signature_version="s3v4")))


def build_launcher(settings: Settings) -> Any:
    if settings.launcher == "ecs":
        return EcsLauncher(client("ecs", settings), settings.ecs_cluster, settings.ecs_task_definition,
                           settings.ecs_subnets, settings.ecs_security_groups)
    return LocalLauncher(Path(settings.workdir))


def build_services(settings: Settings, launcher: Any = None) -> Services:
    repos = build_repositories(client("dynamodb", settings), settings.table_name)
    sfn = queue = None
    if settings.uses_step_functions:
        sfn = StepFunctions(client("stepfunctions", settings), settings.task_state_machine_arn,
                            settings.run_state_machine_arn)
        queue = DispatchQueue(client("sqs", settings), settings.dispatch_queue_url)
    outbox = Outbox(repos, sfn, queue)
    keys = KeyService(repos)
    roles = RoleService(repos)
    projects = ProjectService(repos, stage=settings.stage)
    on = settings.uses_step_functions
    director = DirectorService(repos)
    tasks = TaskService(repos, roles, outbox, sfn=on, max_attempts=settings.max_attempts)
    runs = RunService(repos, projects, roles, outbox, tasks, sfn=on, director=director)
    launcher = launcher or build_launcher(settings)
    dispatch = DispatchService(repos, tasks, roles, keys, outbox, launcher, runs=runs, api_url=settings.api_url,
                               launch_window_seconds=settings.launch_window_seconds)
    objects = ProofStore(s3_client(settings), settings.bucket) if settings.bucket else None
    proofs = ProofService(repos, objects, tasks, projects, roles, size_limits=settings.proof_size_limits)
    approvals = ApprovalService(repos, runs, tasks)
    return Services(settings=settings, repos=repos, keys=keys, projects=projects, roles=roles, runs=runs,
                    tasks=tasks, approvals=approvals, outbox=outbox, dispatch=dispatch,
                    launcher=launcher, proofs=proofs, handoffs=HandoffService(repos, tasks),
                    fix_tasks=FixTaskService(repos, tasks, runs, proofs),
                    bugs=BugService(repos, projects, runs, tasks),
                    context=ContextService(repos, roles, proofs), director=director,
                    usage=UsageService(repos, tasks, runs), attention=AttentionService(repos),
                    state=StateService(repos, tasks, objects),
                    sweeper=Sweeper(repos, outbox, tasks, approvals))


def get_services() -> Services:
    global _services
    with _lock:
        if _services is None:
            _services = build_services(Settings.from_env())
        return _services


def reset_services(services: Optional[Services] = None) -> None:
    """Tests and the local stack swap the wiring (e.g. after moto starts)."""
    global _services
    with _lock:
        _services = services
