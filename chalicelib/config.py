"""Settings: read from the environment where Baton is deployed (set per stage in
.chalice/config.json and by the deployed template); built by the local stack and passed in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _list(name: str) -> list[str]:
    return [v for v in os.environ.get(name, "").split(",") if v]


def _size_limits(name: str) -> dict[str, int]:
    """``default=52428800,screenshot=10485760``: the largest proof in bytes, per proof type."""
    limits: dict[str, int] = {}
    for pair in _list(name):
        kind, _, value = pair.partition("=")
        if not value.strip().isdigit():
            raise ValueError(f"{name}: {pair!r} is not type=bytes (e.g. screenshot=10485760)")
        limits[kind.strip()] = int(value)
    return limits


@dataclass(frozen=True)
class Settings:
    stage: str
    region: str
    table_name: str
    orchestration: str = "plain"          # "stepfunctions", or "plain" (claimable at once, no executions)
    idempotency_table: str = ""
    bucket: str = ""
    dispatch_queue_url: str = ""
    task_state_machine_arn: str = ""
    run_state_machine_arn: str = ""
    launcher: str = "local"               # "local" (subprocess) or "ecs"
    api_url: str = ""
    workdir: str = ".baton"
    ecs_cluster: str = ""
    ecs_task_definition: str = ""
    ecs_subnets: list[str] = field(default_factory=list)
    ecs_security_groups: list[str] = field(default_factory=list)
    max_attempts: int = 3                 # stage jobs per stage whose agent went silent, before the task fails
    launch_window_seconds: int = 300      # a container job's first lease: time for its runner to start
    # Largest proof per type in bytes, over the built-in defaults (50 MB; screenshots 10 MB).
    proof_size_limits: dict[str, int] = field(default_factory=dict)
    # Events out: the EventBridge bus every audit event goes to, and the webhook queue (SQS FIFO) of
    # deliveries; neither set: nothing is published. Webhook deliveries: backoff from
    # webhook_retry_base_seconds doubling up to webhook_retry_cap_seconds, for webhook_retry_seconds;
    # each attempt at most webhook_timeout_seconds. webhook_allow_loopback: the local stack's
    # receivers on 127.0.0.1/localhost (http too); never set where Baton is deployed.
    event_bus: str = ""
    webhook_queue_url: str = ""
    webhook_retry_base_seconds: float = 30.0
    webhook_retry_cap_seconds: float = 3600.0
    webhook_retry_seconds: float = 24 * 3600.0
    webhook_timeout_seconds: float = 5.0
    webhook_allow_loopback: bool = False
    # How a commit's PublishEvents outbox record leaves: "stream" (the table's DynamoDB Stream feeds
    # the publish function, off the request path: as deployed and on the local stack) or "request"
    # (the committing request delivers it right after its commit, ~3 more AWS calls per request).
    events_delivery: str = "stream"
    # Where bootstrap's clients connect, and as whom: set by the local stack (its moto server and
    # moto's placeholder credentials). Empty, as deployed: botocore's own resolution (the Lambda
    # role's credentials; AWS_ENDPOINT_URL* when set), which is why from_env reads none of them.
    aws_endpoint_url: str = ""
    aws_access_key_id: str = field(default="", repr=False)
    aws_secret_access_key: str = field(default="", repr=False)

    @property
    def uses_step_functions(self) -> bool:
        return self.orchestration == "stepfunctions"

    @property
    def publishes_in_request(self) -> bool:
        return self.events_delivery == "request"

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        return cls(
            stage=env("BATON_STAGE", "local"),
            region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
            table_name=env("BATON_TABLE", "baton-local"),
            orchestration=env("BATON_ORCHESTRATION", "plain"),
            idempotency_table=env("BATON_IDEMPOTENCY_TABLE", ""),
            bucket=env("BATON_BUCKET", ""),
            dispatch_queue_url=env("BATON_DISPATCH_QUEUE_URL", ""),
            task_state_machine_arn=env("BATON_TASK_STATE_MACHINE_ARN", ""),
            run_state_machine_arn=env("BATON_RUN_STATE_MACHINE_ARN", ""),
            launcher=env("BATON_LAUNCHER", "local"),
            api_url=env("BATON_API_URL", ""),
            workdir=env("BATON_WORKDIR", ".baton"),
            ecs_cluster=env("BATON_ECS_CLUSTER", ""),
            ecs_task_definition=env("BATON_ECS_TASK_DEFINITION", ""),
            ecs_subnets=_list("BATON_ECS_SUBNETS"),
            ecs_security_groups=_list("BATON_ECS_SECURITY_GROUPS"),
            max_attempts=int(env("BATON_MAX_ATTEMPTS", "3")),
            launch_window_seconds=int(env("BATON_LAUNCH_WINDOW_SECONDS", "300")),
            proof_size_limits=_size_limits("BATON_PROOF_SIZE_LIMITS"),
            event_bus=env("BATON_EVENT_BUS", ""),
            webhook_queue_url=env("BATON_WEBHOOK_QUEUE_URL", ""),
            webhook_retry_base_seconds=float(env("BATON_WEBHOOK_RETRY_BASE_SECONDS", "30")),
            webhook_retry_cap_seconds=float(env("BATON_WEBHOOK_RETRY_CAP_SECONDS", "3600")),
            webhook_retry_seconds=float(env("BATON_WEBHOOK_RETRY_SECONDS", str(24 * 3600))),
            webhook_timeout_seconds=float(env("BATON_WEBHOOK_TIMEOUT_SECONDS", "5")),
            events_delivery=env("BATON_EVENTS_DELIVERY", "stream"),
        )
