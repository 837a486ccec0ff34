"""Create the resources of ``infra/resources.yaml`` in moto (or any endpoint boto3 points at).

The cloud template is the single definition: this module reads each resource's properties from it
and issues the matching boto3 create calls (``create_local_resources`` for the whole local stack,
``create_table`` for one table: the tests' in-process moto makes its tables with it too).

What is left out locally, and why:

* ``DeletionProtectionEnabled`` of the tables: moto enforces it, and the local stack must stay
  resettable (it is a production safety net, not behaviour the code depends on).
* ``ProofBucketPolicy`` (deny requests without TLS): moto evaluates bucket policies without their
  conditions, so it would deny every request; the local stack speaks plain HTTP anyway.
* The state machines' ``LoggingConfiguration`` (no CloudWatch Logs in the local stack) and the
  stack-only resources (IAM roles, alarms, log groups, ECS, API Gateway, the Lambda functions):
  locally the API runs under ``chalice local`` and agents run as local processes.

Everything else (keys, indexes, billing mode, SSE, TTL, PITR, bucket versioning, encryption,
public access block, ownership controls and lifecycle, queue attributes and redrive, FIFO queues,
the ASL of the state machines with its substitutions, the event bus and its archive) is
translated, even where moto ignores it.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import boto3
import yaml
from botocore.exceptions import ClientError

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "resources.yaml"

# Local physical names, by logical id of infra/resources.yaml ({prefix} is create_local_resources's).
LOCAL_NAMES = {
    "BatonTable": "{prefix}",
    "IdempotencyTable": "{prefix}-idempotency",
    "ProofBucket": "{prefix}-proofs",
    "DispatchDLQ": "{prefix}-dispatch-dlq",
    "DispatchQueue": "{prefix}-dispatch",
    "TaskPipeline": "{prefix}-task-pipeline",
    "RunPipeline": "{prefix}-run-pipeline",
    "EventBus": "{prefix}-events",
    "EventArchive": "{prefix}-events-archive",
    "WebhookDLQ": "{prefix}-webhooks-dlq.fifo",
    "WebhookQueue": "{prefix}-webhooks.fifo",
}

Clients = Union[Mapping[str, Any], "boto3.session.Session", None]


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template, parsed once per file version (each test's tables come from it: parsing takes
    ~50 ms, copying ~1 ms); callers get their own copy."""
    return copy.deepcopy(_parsed_template(path, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _parsed_template(path: Path, mtime_ns: int) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def create_table(dynamodb: Any, table_name: str, logical_id: str = "BatonTable", *,
                 template_path: Path = TEMPLATE) -> str:
    """Create (or find) the table ``logical_id`` of the template as the cloud stack has it: keys,
    indexes, billing mode, SSE, tags, its stream, then TTL and point-in-time recovery. The local
    stack and the tests' in-process moto both make their tables here, so tests run against the same
    tables. Returns the table's stream ARN ("" without a stream)."""
    props = load_template(template_path)["Resources"][logical_id]["Properties"]
    params: dict[str, Any] = {key: props[key] for key in ("AttributeDefinitions", "KeySchema",
                                                          "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
                                                          "BillingMode", "ProvisionedThroughput") if key in props}
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        params["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))}
        for cfn_key, api_key in (("SSEType", "SSEType"), ("KMSMasterKeyId", "KMSMasterKeyId")):
            if cfn_key in sse:
                params["SSESpecification"][api_key] = sse[cfn_key]
    if _tags(props):
        params["Tags"] = _tags(props)
    stream = props.get("StreamSpecification")
    if stream:
        params["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    try:
        dynamodb.create_table(TableName=table_name, **params)
    except dynamodb.exceptions.ResourceInUseException:
        pass
    dynamodb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})

    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification={
                "Enabled": True, "AttributeName": ttl["AttributeName"]})
    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr and pitr.get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(TableName=table_name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    if not stream:
        return ""
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    if not (table.get("StreamSpecification") or {}).get("StreamEnabled"):   # made before it had one
        table = dynamodb.update_table(TableName=table_name,
                                      StreamSpecification=params["StreamSpecification"])["TableDescription"]
    return str(table["LatestStreamArn"])


@dataclass(frozen=True)
class LocalResources:
    """Names, URLs and ARNs of the local stack's resources."""

    table_name: str
    idempotency_table_name: str
    bucket: str
    dispatch_queue_url: str
    dlq_url: str
    dispatch_queue_arn: str
    task_state_machine_arn: str
    run_state_machine_arn: str
    event_bus_name: str = ""
    event_bus_arn: str = ""
    webhook_queue_url: str = ""
    webhook_queue_arn: str = ""
    webhook_dlq_url: str = ""
    table_stream_arn: str = ""     # the BatonTable's DynamoDB Stream (the local StreamPump reads it)

    def env(self, *, stage: str = "local", launcher: str = "local",
            orchestration: str = "stepfunctions") -> dict[str, str]:
        """The BATON_* variables the app reads, for these resources (ECS ones are cloud-only)."""
        return {
            "BATON_STAGE": stage,
            "BATON_TABLE": self.table_name,
            "BATON_IDEMPOTENCY_TABLE": self.idempotency_table_name,
            "BATON_BUCKET": self.bucket,
            "BATON_DISPATCH_QUEUE_URL": self.dispatch_queue_url,
            "BATON_TASK_STATE_MACHINE_ARN": self.task_state_machine_arn,
            "BATON_RUN_STATE_MACHINE_ARN": self.run_state_machine_arn,
            "BATON_ORCHESTRATION": orchestration,
            "BATON_LAUNCHER": launcher,
            "BATON_EVENT_BUS": self.event_bus_name,
            "BATON_WEBHOOK_QUEUE_URL": self.webhook_queue_url,
        }


def create_local_resources(clients: Clients = None, prefix: str = "baton-local", *,
                           visibility_timeout: Optional[int] = None,
                           template_path: Path = TEMPLATE) -> LocalResources:
    """Create (or find) the tables, bucket, queues and state machines of ``infra/resources.yaml``.

    ``clients``: a mapping of service name to boto3 client (``dynamodb``, ``s3``, ``sqs``,
    ``stepfunctions``, ``events``), a ``boto3.session.Session``, or None for the default session (boto3 honours
    ``AWS_ENDPOINT_URL``). ``visibility_timeout`` overrides the dispatch queue's (local speed).

    Idempotent: a second call with the same prefix returns the same resources (attributes and
    state machine definitions are brought back in line with the template).

    On moto, call this only AFTER Step Functions execution was switched on (in-process:
    ``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``; server mode:
    ``POST /moto-api/config {"stepfunctions": {"execute_state_machine": true}}``): state machines
    created before live in moto's non-executing backend and cannot be started.
    """
    client = _client_factory(clients)
    template = load_template(template_path)
    resources = template["Resources"]
    names = {logical_id: pattern.format(prefix=prefix) for logical_id, pattern in LOCAL_NAMES.items()}

    sqs = client("sqs")
    ctx = _Intrinsics(region=sqs.meta.region_name, stack_name=prefix)
    for name, parameter in (template.get("Parameters") or {}).items():   # the defaults a stack would take
        if "Default" in parameter:
            ctx.refs[name] = str(parameter["Default"])

    # Queues first: their ARN gives the account id the other ARNs need.
    dlq_url, dlq_arn = _create_queue(sqs, names["DispatchDLQ"], resources["DispatchDLQ"], ctx)
    ctx.account_id = dlq_arn.split(":")[4]
    ctx.set("DispatchDLQ", dlq_url, Arn=dlq_arn, QueueName=names["DispatchDLQ"])
    queue_url, queue_arn = _create_queue(sqs, names["DispatchQueue"], resources["DispatchQueue"], ctx,
                                         visibility_timeout=visibility_timeout)
    ctx.set("DispatchQueue", queue_url, Arn=queue_arn, QueueName=names["DispatchQueue"])
    webhook_dlq_url, webhook_dlq_arn = _create_queue(sqs, names["WebhookDLQ"], resources["WebhookDLQ"], ctx)
    ctx.set("WebhookDLQ", webhook_dlq_url, Arn=webhook_dlq_arn, QueueName=names["WebhookDLQ"])
    webhook_url, webhook_arn = _create_queue(sqs, names["WebhookQueue"], resources["WebhookQueue"], ctx,
                                             visibility_timeout=visibility_timeout)
    ctx.set("WebhookQueue", webhook_url, Arn=webhook_arn, QueueName=names["WebhookQueue"])
    bus_arn = _create_event_bus(client("events"), names["EventBus"], names["EventArchive"], resources, ctx)

    dynamodb = client("dynamodb")
    streams = {}
    for logical_id in ("BatonTable", "IdempotencyTable"):
        streams[logical_id] = create_table(dynamodb, names[logical_id], logical_id, template_path=template_path)
        ctx.set(logical_id, names[logical_id])

    bucket = names["ProofBucket"]
    ctx.set("ProofBucket", bucket, Arn=f"arn:{ctx.partition}:s3:::{bucket}",
            DomainName=f"{bucket}.s3.amazonaws.com")
    _create_bucket(client("s3"), bucket, resources["ProofBucket"], ctx)

    stepfunctions = client("stepfunctions")
    role_arn = f"arn:{ctx.partition}:iam::{ctx.account_id}:role/{prefix}-pipeline"
    arns = {}
    for logical_id in ("TaskPipeline", "RunPipeline"):
        arns[logical_id] = _create_state_machine(stepfunctions, names[logical_id], resources[logical_id],
                                                 ctx, role_arn, template_path.parent)

    return LocalResources(
        table_name=names["BatonTable"],
        idempotency_table_name=names["IdempotencyTable"],
        bucket=bucket,
        dispatch_queue_url=queue_url,
        dlq_url=dlq_url,
        dispatch_queue_arn=queue_arn,
        task_state_machine_arn=arns["TaskPipeline"],
        run_state_machine_arn=arns["RunPipeline"],
        event_bus_name=names["EventBus"],
        event_bus_arn=bus_arn,
        webhook_queue_url=webhook_url,
        webhook_queue_arn=webhook_arn,
        webhook_dlq_url=webhook_dlq_url,
        table_stream_arn=streams["BatonTable"],
    )


# --------------------------------------------------------------------------- helpers

def _client_factory(clients: Clients) -> Callable[[str], Any]:
    if isinstance(clients, Mapping):
        return lambda service: clients[service]
    session = clients if clients is not None else boto3.session.Session()
    cache: dict[str, Any] = {}

    def get(service: str) -> Any:
        if service not in cache:
            cache[service] = session.client(service)
        return cache[service]

    return get


class _Intrinsics:
    """Resolves the long-form intrinsics of the template against the local resources."""

    _SUB = re.compile(r"\$\{([^}!][^}]*)\}")

    def __init__(self, region: str, stack_name: str, partition: str = "aws"):
        self.region = region
        self.partition = partition
        self.account_id = "123456789012"
        self.refs: dict[str, str] = {"AWS::Region": region, "AWS::Partition": partition,
                                     "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": stack_name}
        self.attrs: dict[str, str] = {}

    def set(self, logical_id: str, ref: str, **attrs: str) -> None:
        self.refs[logical_id] = ref
        self.attrs.update({f"{logical_id}.{name}": value for name, value in attrs.items()})

    def _name(self, name: str) -> str:
        if name == "AWS::AccountId":
            return self.account_id
        value = self.attrs.get(name) if "." in name else self.refs.get(name)
        if value is None:
            raise KeyError(f"infra/resources.yaml refers to {name!r}, which the local stack does not create")
        return value

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._name(arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._name(f"{logical_id}.{attr}")
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self(v) for k, v in arg[1].items()})
                return self._SUB.sub(lambda m: str(variables[m.group(1)] if m.group(1) in variables
                                                   else self._name(m.group(1))), text)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(self(item)) for item in items)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _tags(props: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"Key": tag["Key"], "Value": str(tag["Value"])} for tag in props.get("Tags") or []]


# --- S3

_LIFECYCLE_KEYS = {
    "Id": ("ID", lambda v: v),
    "Status": ("Status", lambda v: v),
    "Prefix": ("Filter", lambda v: {"Prefix": v}),
    "ExpirationInDays": ("Expiration", lambda v: {"Days": int(v)}),
    "NoncurrentVersionExpiration": ("NoncurrentVersionExpiration",
                                    lambda v: {k: int(x) for k, x in v.items()}),
    "NoncurrentVersionExpirationInDays": ("NoncurrentVersionExpiration", lambda v: {"NoncurrentDays": int(v)}),
    "AbortIncompleteMultipartUpload": ("AbortIncompleteMultipartUpload",
                                       lambda v: {"DaysAfterInitiation": int(v["DaysAfterInitiation"])}),
}


def _lifecycle_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Filter": {"Prefix": ""}}
    for key, value in rule.items():
        if key not in _LIFECYCLE_KEYS:
            raise ValueError(f"lifecycle rule key {key!r} has no local translation yet (chalicelib/local/resources.py)")
        api_key, convert = _LIFECYCLE_KEYS[key]
        out[api_key] = convert(value)
    return out


def _encryption_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "ServerSideEncryptionByDefault" in rule:   # the API's name differs from CloudFormation's
        out["ApplyServerSideEncryptionByDefault"] = dict(rule["ServerSideEncryptionByDefault"])
    if "BucketKeyEnabled" in rule:
        out["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
    return out


def _create_bucket(s3: Any, bucket: str, resource: Mapping[str, Any], ctx: _Intrinsics) -> None:
    props = resource["Properties"]
    params: dict[str, Any] = {"Bucket": bucket}
    if ctx.region != "us-east-1":
        params["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
    try:
        s3.create_bucket(**params)
    except ClientError as error:
        if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={
            "Status": props["VersioningConfiguration"]["Status"]})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
            key: bool(value) for key, value in props["PublicAccessBlockConfiguration"].items()})
    if "BucketEncryption" in props:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
            "Rules": [_encryption_rule(ctx(rule))
                      for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]})
    if "OwnershipControls" in props:
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
            "Rules": props["OwnershipControls"]["Rules"]})
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={
            "Rules": [_lifecycle_rule(rule) for rule in props["LifecycleConfiguration"]["Rules"]]})
    if _tags(props):
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": _tags(props)})


# --- SQS

_QUEUE_ATTRIBUTES = ("DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
                     "VisibilityTimeout", "SqsManagedSseEnabled", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds",
                     "FifoQueue", "ContentBasedDeduplication")


def _attribute(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _create_queue(sqs: Any, name: str, resource: Mapping[str, Any], ctx: _Intrinsics,
                  visibility_timeout: Optional[int] = None) -> tuple[str, str]:
    props = resource["Properties"]
    attributes = {key: _attribute(ctx(props[key])) for key in _QUEUE_ATTRIBUTES if key in props}
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(ctx(props["RedrivePolicy"]))
    if visibility_timeout is not None:
        attributes["VisibilityTimeout"] = str(int(visibility_timeout))
    tags = {tag["Key"]: tag["Value"] for tag in _tags(props)}
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes, **({"tags": tags} if tags else {}))["QueueUrl"]
    except ClientError as error:
        if _error_code(error) not in ("QueueAlreadyExists", "QueueNameExists",
                                      "AWS.SimpleQueueService.QueueNameExists"):
            raise
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


# --- EventBridge

def _create_event_bus(events: Any, name: str, archive_name: str, resources: Mapping[str, Any],
                      ctx: _Intrinsics) -> str:
    """The bus (its ``Name`` is the stack's; locally ``name``) and its archive, as the template has them."""
    try:
        arn = events.create_event_bus(Name=name)["EventBusArn"]
    except ClientError as error:
        if _error_code(error) != "ResourceAlreadyExistsException":
            raise
        arn = events.describe_event_bus(Name=name)["Arn"]
    ctx.set("EventBus", name, Arn=arn, Name=name)
    archive = ctx(resources["EventArchive"]["Properties"])
    params: dict[str, Any] = {"ArchiveName": archive_name, "EventSourceArn": archive["SourceArn"]}
    if "RetentionDays" in archive:
        params["RetentionDays"] = int(archive["RetentionDays"])
    if "EventPattern" in archive:
        params["EventPattern"] = json.dumps(archive["EventPattern"])
    if "Description" in archive:
        params["Description"] = archive["Description"]
    try:
        events.create_archive(**params)
    except ClientError as error:
        if _error_code(error) != "ResourceAlreadyExistsException":
            raise
    return arn


# --- Step Functions

def state_machine_definition(resource: Mapping[str, Any], substitutions: Mapping[str, str],
                             infra_dir: Path = TEMPLATE.parent) -> str:
    """The ASL named by the resource's ``Metadata.baton.definition``, with ``${name}`` substituted."""
    text = (infra_dir / resource["Metadata"]["baton"]["definition"]).read_text()
    for name, value in substitutions.items():
        text = text.replace("${%s}" % name, json.dumps(str(value))[1:-1])
    json.loads(text)  # still valid JSON
    return text


def _create_state_machine(stepfunctions: Any, name: str, resource: Mapping[str, Any], ctx: _Intrinsics,
                          role_arn: str, infra_dir: Path) -> str:
    props = resource["Properties"]
    definition = state_machine_definition(resource, ctx(props.get("DefinitionSubstitutions") or {}), infra_dir)
    params: dict[str, Any] = {"name": name, "definition": definition, "roleArn": role_arn,
                              "type": props.get("StateMachineType", "STANDARD")}
    if props.get("TracingConfiguration"):
        params["tracingConfiguration"] = {"enabled": bool(props["TracingConfiguration"].get("Enabled"))}
    if _tags(props):
        params["tags"] = [{"key": tag["Key"], "value": tag["Value"]} for tag in _tags(props)]
    try:
        arn = stepfunctions.create_state_machine(**params)["stateMachineArn"]
    except ClientError as error:
        if _error_code(error) != "StateMachineAlreadyExists":
            raise
        arn = _state_machine_arn(stepfunctions, name)
    # moto returns an existing machine as is: bring its definition in line with the files.
    if stepfunctions.describe_state_machine(stateMachineArn=arn)["definition"] != definition:
        stepfunctions.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role_arn)
    return arn


def _state_machine_arn(stepfunctions: Any, name: str) -> str:
    for page in stepfunctions.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                return machine["stateMachineArn"]
    raise LookupError(f"state machine {name!r} exists but is not listed")
