"""The one wiring point: builds AWS clients and services once per container (never per request,
never at import time, so tests and the local stack can point boto3 at moto first).

``build_services`` makes the AWS clients and the key service (every authenticated request needs
it); every other service is built on first use, and its module imported then: a request pays for
the services its route calls, and the API function never loads the dispatcher, the sweeper or the
launchers (the launcher, and its ECS client, come with the dispatcher)."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import boto3
from botocore.config import Config

if TYPE_CHECKING:   # imported when the first request builds the services, not with the app
    from .adapters.dynamodb import Repositories
    from .adapters.proofs_s3 import ProofStore
    from .adapters.stepfunctions import DispatchQueue, StepFunctions
    from .config import Settings
    from .services.approvals import ApprovalService
    from .services.bugs import BugService
    from .services.context import ContextService
    from .services.director import DirectorService
    from .services.dispatch import DispatchService
    from .services.events import EventPublisher
    from .services.fix_tasks import FixTaskService
    from .services.handoffs import HandoffService
    from .services.outbox import Outbox
    from .services.projects import ProjectService
    from .services.proofs import ProofService
    from .services.roles import RoleService
    from .services.runs import RunService
    from .services.sweeper import Sweeper
    from .services.tasks import TaskService
    from .services.usage import UsageService
    from .services.webhook_delivery import WebhookDeliverer
    from .services.webhooks import WebhookService

CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=15, retries={"max_attempts": 4, "mode": "standard"},
                       max_pool_connections=50)


class built_on_first_use(functools.cached_property):
    """A service of ``Services``: built (its module imported) the first time it is asked for, once,
    under the container's lock (the local stack serves requests and pumps the queue on threads)."""

    def __get__(self, instance: Any, owner: Optional[type] = None) -> Any:
        if instance is None:
            return self
        with instance._lock:
            return super().__get__(instance, owner)


class Services:
    """The container's services. The imports inside the properties are deferred on purpose (see
    the module's docstring): each loads a service's code when a request first needs it."""

    def __init__(self, settings: Settings, repos: Repositories, *, sfn: Optional[StepFunctions] = None,
                 queue: Optional[DispatchQueue] = None, objects: Optional[ProofStore] = None, launcher: Any = None):
        from .services.api_keys import KeyService

        self.settings = settings
        self.repos = repos
        self.keys = KeyService(repos)
        self._sfn, self._queue, self._objects, self._given_launcher = sfn, queue, objects, launcher
        self._lock = threading.RLock()
        # Every commit's audit event goes out through the outbox (services.events): the table's
        # stream feeds the record to the publish function (services.publish_stream), or, with
        # BATON_EVENTS_DELIVERY=request, the committing request delivers it itself.
        repos.audit.publishes = self.publishes
        if self.publishes and settings.publishes_in_request:
            repos.audit.publisher = lambda record: self.outbox.deliver([record])

    @property
    def publishes(self) -> bool:
        return bool(self.settings.event_bus or self.settings.webhook_queue_url)

    @built_on_first_use
    def outbox(self) -> Outbox:
        from .services.outbox import Outbox

        return Outbox(self.repos, self._sfn, self._queue, publisher=(lambda: self.events) if self.publishes else None)

    @built_on_first_use
    def events(self) -> EventPublisher:
        from .adapters.events import EventBus
        from .services.events import EventPublisher

        bus = EventBus(client("events", self.settings), self.settings.event_bus) if self.settings.event_bus else None
        return EventPublisher(self.repos, bus, self.webhook_queue)

    @built_on_first_use
    def publish_stream(self) -> Any:
        from .services.publish_stream import StreamConsumer

        return StreamConsumer(self.outbox)

    @built_on_first_use
    def webhook_queue(self) -> Any:
        from .adapters.events import WebhookQueue

        url = self.settings.webhook_queue_url
        return WebhookQueue(client("sqs", self.settings), url) if url else None

    @built_on_first_use
    def webhooks(self) -> WebhookService:
        from .services.webhooks import WebhookService

        return WebhookService(self.repos, self.projects, allow_loopback=self.settings.webhook_allow_loopback)

    @built_on_first_use
    def webhook_deliverer(self) -> WebhookDeliverer:
        from .adapters.webhook_http import WebhookSender
        from .services.webhook_delivery import RetryPolicy, WebhookDeliverer

        settings = self.settings
        sender = WebhookSender(allow_loopback=settings.webhook_allow_loopback, timeout=settings.webhook_timeout_seconds)
        return WebhookDeliverer(self.repos, sender, RetryPolicy(base_seconds=settings.webhook_retry_base_seconds,
                                                                cap_seconds=settings.webhook_retry_cap_seconds,
                                                                give_up_seconds=settings.webhook_retry_seconds))

    @built_on_first_use
    def roles(self) -> RoleService:
        from .services.roles import RoleService

        return RoleService(self.repos)

    @built_on_first_use
    def projects(self) -> ProjectService:
        from .services.projects import ProjectService

        return ProjectService(self.repos, stage=self.settings.stage)

    @built_on_first_use
    def director(self) -> DirectorService:
        from .services.director import DirectorService

        return DirectorService(self.repos, self.roles, sfn=self.settings.uses_step_functions)

    @built_on_first_use
    def tasks(self) -> TaskService:
        from .services.tasks import TaskService

        service = TaskService(self.repos, self.roles, self.outbox, sfn=self.settings.uses_step_functions,
                              max_attempts=self.settings.max_attempts)
        service.watch = self.director.watch   # the director's fast path: a failure, a lost lease
        return service

    @built_on_first_use
    def runs(self) -> RunService:
        from .services.runs import RunService

        return RunService(self.repos, self.projects, self.roles, self.outbox, self.tasks,
                          sfn=self.settings.uses_step_functions, director=self.director)

    @built_on_first_use
    def proofs(self) -> ProofService:
        from .services.proofs import ProofService

        return ProofService(self.repos, self._objects, self.tasks, self.projects, self.roles,
                            size_limits=self.settings.proof_size_limits)

    @built_on_first_use
    def approvals(self) -> ApprovalService:
        from .services.approvals import ApprovalService

        return ApprovalService(self.repos, self.runs, self.tasks)

    @built_on_first_use
    def handoffs(self) -> HandoffService:
        from .services.handoffs import HandoffService

        return HandoffService(self.repos, self.tasks)

    @built_on_first_use
    def fix_tasks(self) -> FixTaskService:
        from .services.fix_tasks import FixTaskService

        return FixTaskService(self.repos, self.tasks, self.runs, self.proofs)

    @built_on_first_use
    def bugs(self) -> BugService:
        from .services.bugs import BugService

        return BugService(self.repos, self.projects, self.runs, self.tasks)

    @built_on_first_use
    def context(self) -> ContextService:
        from .services.context import ContextService

        return ContextService(self.repos, self.roles, self.proofs)

    @built_on_first_use
    def usage(self) -> UsageService:
        from .services.usage import UsageService

        return UsageService(self.repos, self.tasks, self.runs)

    @built_on_first_use
    def state(self) -> Any:
        from .services.state import StateService

        return StateService(self.repos, self.tasks, self._objects)

    @built_on_first_use
    def attention(self) -> Any:
        from .services.attention import AttentionService

        return AttentionService(self.repos, self.tasks)

    @built_on_first_use
    def launcher(self) -> Any:
        return build_launcher(self.settings) if self._given_launcher is None else self._given_launcher

    @built_on_first_use
    def dispatch(self) -> DispatchService:
        from .services.dispatch import DispatchService

        settings = self.settings
        return DispatchService(self.repos, self.tasks, self.roles, self.keys, self.outbox, self.launcher,
                               runs=self.runs, api_url=settings.api_url,
                               launch_window_seconds=settings.launch_window_seconds)

    @built_on_first_use
    def sweeper(self) -> Sweeper:
        from .services.sweeper import Sweeper

        return Sweeper(self.repos, self.outbox, self.tasks, self.approvals, director=self.director)


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
    from .adapters.launchers import EcsLauncher, LocalLauncher  # only the dispatcher launches jobs

    if settings.launcher == "ecs":
        return EcsLauncher(client("ecs", settings), settings.ecs_cluster, settings.ecs_task_definition,
                           settings.ecs_subnets, settings.ecs_security_groups)
    return LocalLauncher(Path(settings.workdir))


def build_services(settings: Settings, launcher: Any = None) -> Services:
    """The AWS clients, made now (botocore reads its settings from the environment when a client is
    made), and the key service; the other services on first use (``Services``)."""
    from .adapters.dynamodb import build_repositories
    from .adapters.proofs_s3 import ProofStore
    from .adapters.stepfunctions import DispatchQueue, StepFunctions

    repos = build_repositories(client("dynamodb", settings), settings.table_name)
    sfn = queue = None
    if settings.uses_step_functions:
        sfn = StepFunctions(client("stepfunctions", settings), settings.task_state_machine_arn,
                            settings.run_state_machine_arn)
        queue = DispatchQueue(client("sqs", settings), settings.dispatch_queue_url)
    objects = ProofStore(s3_client(settings), settings.bucket) if settings.bucket else None
    return Services(settings, repos, sfn=sfn, queue=queue, objects=objects, launcher=launcher)


def get_services() -> Services:
    global _services
    with _lock:
        if _services is None:
            from .config import Settings

            _services = build_services(Settings.from_env())
        return _services


def reset_services(services: Optional[Services] = None) -> None:
    """Tests and the local stack swap the wiring (e.g. after moto starts)."""
    global _services
    with _lock:
        _services = services
