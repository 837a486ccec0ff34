"""infra/resources.yaml: its rules, and the local stack built from it (chalicelib/local/resources.py)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from chalicelib.local.resources import TEMPLATE, LocalResources, create_local_resources

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "baton-infra-test"
SFN_INTEGRATIONS = {"arn:aws:states:::sqs:sendMessage.waitForTaskToken", "arn:aws:states:::sqs:sendMessage"}


def template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def chalice_config() -> dict:
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def asl_files() -> list[Path]:
    resources = template()["Resources"]
    return [TEMPLATE.parent / r["Metadata"]["baton"]["definition"] for r in resources.values()
            if r.get("Type") == "AWS::StepFunctions::StateMachine"]


def task_states(definition: dict):
    for state in definition["States"].values():
        yield state
        for branch in state.get("Branches", []):
            yield from task_states(branch)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from task_states(state[key])


@pytest.fixture
def aws():
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.session.Session()


@pytest.fixture
def local(aws) -> LocalResources:
    return create_local_resources(aws, prefix=PREFIX)


# ---------------------------------------------------------------- the template's own rules

def test_queue_settings_follow_the_dispatcher():
    resources = template()["Resources"]
    queue, dlq = resources["DispatchQueue"]["Properties"], resources["DispatchDLQ"]["Properties"]
    timeout = chalice_config()["lambda_functions"]["dispatch"]["lambda_timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 5
    assert dlq["MessageRetentionPeriod"] == 1209600 > queue["MessageRetentionPeriod"]
    assert queue["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]
    source = resources["Dispatch"]["Properties"]["Events"]["DispatchSqsEventSource"]["Properties"]
    assert source["Queue"] == {"Fn::Sub": "${DispatchQueue.Arn}"}   # Fn::Sub overrides Chalice's Fn::Sub
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumConcurrency" in source["ScalingConfig"]


def test_state_machines_use_only_what_their_role_allows():
    """The pipeline role may only sqs:SendMessage to the dispatch queue: a new integration in the
    ASL needs a new statement in PipelineRole (infra/resources.yaml)."""
    files = asl_files()
    assert {f.name for f in files} == {"task.asl.json", "run.asl.json"}
    for path in files:
        definition = json.loads(path.read_text())
        resources = {s["Resource"] for s in task_states(definition) if s["Type"] == "Task"}
        assert resources and resources <= SFN_INTEGRATIONS, (path.name, resources - SFN_INTEGRATIONS)
        assert "${DispatchQueueUrl}" in path.read_text()


def test_every_lambda_gets_the_baton_environment():
    config = chalice_config()
    resources = template()["Resources"]
    static = {**config["environment_variables"], **config["stages"]["dev"]["environment_variables"]}
    needed = {"BATON_TABLE", "BATON_IDEMPOTENCY_TABLE", "BATON_BUCKET", "BATON_DISPATCH_QUEUE_URL",
              "BATON_TASK_STATE_MACHINE_ARN", "BATON_RUN_STATE_MACHINE_ARN", "BATON_ORCHESTRATION", "BATON_LAUNCHER",
              "BATON_ECS_CLUSTER", "BATON_ECS_TASK_DEFINITION", "BATON_ECS_SUBNETS", "BATON_ECS_SECURITY_GROUPS",
              "BATON_STAGE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL"}
    needed |= {"BATON_EVENT_BUS", "BATON_WEBHOOK_QUEUE_URL"}
    for function in ("APIHandler", "Dispatch", "Sweep", "Webhooks", "Publish"):
        variables = {**static, **resources[function]["Properties"]["Environment"]["Variables"]}
        assert needed <= set(variables), (function, needed - set(variables))
    assert static["BATON_ORCHESTRATION"] == "stepfunctions" and static["BATON_LAUNCHER"] == "ecs"


def test_lambda_policies_name_every_action():
    for name in ("policy-api.json", "policy-dispatch.json", "policy-sweep.json", "policy-webhooks.json",
                 "policy-publish.json"):
        for statement in json.loads((ROOT / ".chalice" / name).read_text())["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in action for action in actions), (name, statement["Sid"])
            if statement["Resource"] == "*":   # only actions that support no resource-level scoping
                # Baton only ever answers a task token with success (no heartbeats, no failures).
                assert set(actions) <= {"xray:PutTraceSegments", "xray:PutTelemetryRecords",
                                        "states:SendTaskSuccess"}, (name, actions)


def test_events_out_resources_and_least_privilege():
    """The bus and its archive; the webhook queue (FIFO, its DLQ FIFO, retries for 24 h fit in
    maxReceiveCount, encrypted like the others); the deliverer's event source reports partial
    failures; only the functions that commit events may publish, each to its own bus and queue."""
    resources = template()["Resources"]
    assert resources["EventBus"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-events"}
    archive = resources["EventArchive"]["Properties"]
    assert archive["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]} and archive["EventPattern"] == {"source": ["baton"]}
    assert archive["RetentionDays"] == {"Ref": "EventArchiveRetentionDays"}
    assert template()["Parameters"]["EventArchiveRetentionDays"]["Default"] == 30
    queue, dlq = resources["WebhookQueue"]["Properties"], resources["WebhookDLQ"]["Properties"]
    assert queue["FifoQueue"] and dlq["FifoQueue"] and queue["ContentBasedDeduplication"] is False
    assert queue["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["WebhookDLQ", "Arn"]}
    # 24 h of backoff capped at 1 h from 30 s is ~31 receives, once more per message ahead of it in a batch
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 62
    assert queue["MessageRetentionPeriod"] > 24 * 3600 and dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    timeout = chalice_config()["lambda_functions"]["webhooks"]["lambda_timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    source = resources["Webhooks"]["Properties"]["Events"]["WebhooksSqsEventSource"]["Properties"]
    assert source["Queue"] == {"Fn::Sub": "${WebhookQueue.Arn}"}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    def statements(name: str) -> list[dict]:
        return json.loads((ROOT / ".chalice" / name).read_text())["Statement"]

    for name in ("policy-api.json", "policy-dispatch.json", "policy-sweep.json"):
        publish = [s for s in statements(name) if "events:PutEvents" in s["Action"]]
        assert publish == [{"Sid": "PublishEvents", "Effect": "Allow", "Action": ["events:PutEvents"],
                            "Resource": {"Fn::GetAtt": ["EventBus", "Arn"]}}], name
        sends = [s["Resource"] for s in statements(name) if "sqs:SendMessage" in s["Action"]]
        assert {"Fn::GetAtt": ["WebhookQueue", "Arn"]} in sends and "*" not in sends, name
    webhooks = statements("policy-webhooks.json")
    actions = {a for s in webhooks for a in s["Action"]}
    assert not any(a.startswith("events:") or a == "sqs:SendMessage" for a in actions)
    consume = next(s for s in webhooks if s["Sid"] == "ConsumeWebhookQueue")
    assert consume["Resource"] == {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
    for stage in ("dev", "prod"):
        assert chalice_config()["stages"][stage]["lambda_functions"]["webhooks"]["iam_policy_file"] == \
            "policy-webhooks.json"


def test_the_table_stream_feeds_the_publish_function_new_publish_records_only():
    """Events leave off the request path: the table's stream (new images), the publish function's
    event source on it (filtered to INSERTs of publish records, from LATEST, bounded retries that
    halve a failing batch), and a role that may read that stream, publish to the bus, send to the
    webhook queue and write the table, nothing more."""
    from chalicelib.services.publish_stream import PUBLISH_FILTER

    resources = template()["Resources"]
    assert resources["BatonTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    source = resources["Publish"]["Properties"]["Events"]["PublishDynamodbEventSource"]["Properties"]
    assert source["Stream"] == {"Fn::GetAtt": ["BatonTable", "StreamArn"]}
    assert source["StartingPosition"] == "LATEST" and source["BisectBatchOnFunctionError"] is True
    assert 0 < source["MaximumRetryAttempts"] <= 5 and 0 < source["MaximumBatchingWindowInSeconds"] <= 2
    [pattern] = [json.loads(f["Pattern"]) for f in source["FilterCriteria"]["Filters"]]
    assert pattern == PUBLISH_FILTER
    assert resources["PublishLogGroup"]["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${AWS::StackName}-publish"}

    statements = json.loads((ROOT / ".chalice" / "policy-publish.json").read_text())["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["ReadTableStream"]["Resource"] == {"Fn::GetAtt": ["BatonTable", "StreamArn"]}
    assert by_sid["PublishEvents"] == {"Sid": "PublishEvents", "Effect": "Allow", "Action": ["events:PutEvents"],
                                       "Resource": {"Fn::GetAtt": ["EventBus", "Arn"]}}
    assert by_sid["EnqueueWebhookDeliveries"]["Resource"] == {"Fn::GetAtt": ["WebhookQueue", "Arn"]}
    actions = {a for s in statements for a in s["Action"]}
    assert not {"dynamodb:Scan", "dynamodb:TransactWriteItems", "sqs:ReceiveMessage", "states:StartExecution"} & actions
    for stage in ("dev", "prod"):
        assert chalice_config()["stages"][stage]["lambda_functions"]["publish"]["iam_policy_file"] == "policy-publish.json"


# ---------------------------------------------------------------- the local stack

def test_creates_every_stateful_resource(aws, local):
    dynamodb, s3, sqs, sfn = (aws.client(s) for s in ("dynamodb", "s3", "sqs", "stepfunctions"))

    table = dynamodb.describe_table(TableName=local.table_name)["Table"]
    assert local.table_name == PREFIX
    assert {k["AttributeName"] for k in table["KeySchema"]} == {"pk", "sk"}
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"gsi1", "gsi2", "gsi3", "gsi4"}
    idempotency = dynamodb.describe_table(TableName=local.idempotency_table_name)["Table"]
    assert idempotency["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    ttl = dynamodb.describe_time_to_live(TableName=local.idempotency_table_name)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}

    assert s3.get_bucket_versioning(Bucket=local.bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=local.bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rule = s3.get_bucket_encryption(Bucket=local.bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("aws:kms", "AES256")
    assert any("NoncurrentVersionExpiration" in r
               for r in s3.get_bucket_lifecycle_configuration(Bucket=local.bucket)["Rules"])
    s3.put_object(Bucket=local.bucket, Key="projects/p/proof.txt", Body=b"ok")   # usable locally

    attributes = sqs.get_queue_attributes(QueueUrl=local.dispatch_queue_url, AttributeNames=["All"])["Attributes"]
    dlq_attributes = sqs.get_queue_attributes(QueueUrl=local.dlq_url, AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == local.dispatch_queue_arn
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_attributes["QueueArn"],
                                                       "maxReceiveCount": 5}
    assert attributes["VisibilityTimeout"] == str(template()["Resources"]["DispatchQueue"]["Properties"]["VisibilityTimeout"])
    assert int(dlq_attributes["MessageRetentionPeriod"]) > int(attributes["MessageRetentionPeriod"])

    for arn, name in ((local.task_state_machine_arn, f"{PREFIX}-task-pipeline"),
                      (local.run_state_machine_arn, f"{PREFIX}-run-pipeline")):
        machine = sfn.describe_state_machine(stateMachineArn=arn)
        assert machine["name"] == name and machine["type"] == "STANDARD"
        assert "${DispatchQueueUrl}" not in machine["definition"]
        queue_urls = {s["Parameters"]["QueueUrl"] for s in task_states(json.loads(machine["definition"]))
                      if s["Type"] == "Task"}
        assert queue_urls == {local.dispatch_queue_url}


def test_the_local_stack_has_the_bus_its_archive_and_the_webhook_fifo_queue(aws, local):
    events, sqs = aws.client("events"), aws.client("sqs")
    assert events.describe_event_bus(Name=local.event_bus_name)["Arn"] == local.event_bus_arn
    [archive] = events.list_archives(EventSourceArn=local.event_bus_arn)["Archives"]
    assert archive["RetentionDays"] == 30
    assert json.loads(events.describe_archive(ArchiveName=archive["ArchiveName"])["EventPattern"]) == {"source": ["baton"]}
    attributes = sqs.get_queue_attributes(QueueUrl=local.webhook_queue_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=local.webhook_dlq_url, AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == local.webhook_queue_arn and attributes["FifoQueue"] == dlq["FifoQueue"] == "true"
    assert attributes["ContentBasedDeduplication"] == "false"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 100}
    assert local.env()["BATON_EVENT_BUS"] == local.event_bus_name
    assert local.env()["BATON_WEBHOOK_QUEUE_URL"] == local.webhook_queue_url


def test_the_local_table_has_its_stream(aws, local):
    table = aws.client("dynamodb").describe_table(TableName=local.table_name)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert local.table_stream_arn == table["LatestStreamArn"]


def test_env_names_the_local_resources(local):
    env = local.env()
    assert env["BATON_TABLE"] == local.table_name
    assert env["BATON_IDEMPOTENCY_TABLE"] == local.idempotency_table_name
    assert env["BATON_BUCKET"] == local.bucket
    assert env["BATON_DISPATCH_QUEUE_URL"] == local.dispatch_queue_url
    assert env["BATON_TASK_STATE_MACHINE_ARN"] == local.task_state_machine_arn
    assert env["BATON_RUN_STATE_MACHINE_ARN"] == local.run_state_machine_arn
    assert (env["BATON_ORCHESTRATION"], env["BATON_LAUNCHER"], env["BATON_STAGE"]) == ("stepfunctions", "local", "local")
    assert local.env(launcher="ecs")["BATON_LAUNCHER"] == "ecs"


def test_a_second_call_returns_the_same_resources(aws, local):
    again = create_local_resources(aws, prefix=PREFIX)
    assert again == local
    faster = create_local_resources({s: aws.client(s) for s in ("dynamodb", "s3", "sqs", "stepfunctions", "events")},
                                    prefix=PREFIX, visibility_timeout=7)
    assert faster == local
    sqs = aws.client("sqs")
    assert sqs.get_queue_attributes(QueueUrl=local.dispatch_queue_url,
                                    AttributeNames=["VisibilityTimeout"])["Attributes"]["VisibilityTimeout"] == "7"
    assert len([u for u in sqs.list_queues(QueueNamePrefix=PREFIX)["QueueUrls"]]) == 4   # dispatch, webhooks + DLQs
    assert len([b for b in aws.client("events").list_event_buses(NamePrefix=PREFIX)["EventBuses"]]) == 1
    machines = [m for m in aws.client("stepfunctions").list_state_machines()["stateMachines"]
                if m["name"].startswith(PREFIX)]
    assert len(machines) == 2
    assert len([t for t in aws.client("dynamodb").list_tables()["TableNames"] if t.startswith(PREFIX)]) == 2


def test_state_machines_execute_and_dispatch_through_the_queue(aws, local):
    sfn, sqs = aws.client("stepfunctions"), aws.client("sqs")
    execution = sfn.start_execution(stateMachineArn=local.run_state_machine_arn, name="run-infra-test",
                                    input=json.dumps({"run_id": "run-infra-test"}))
    try:
        deadline = time.monotonic() + 10
        messages = []
        while not messages and time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=local.dispatch_queue_url, WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                time.sleep(0.05)
        assert messages, "the run pipeline sent nothing to the dispatch queue"
        body = json.loads(messages[0]["Body"])
        assert body["run_id"] == "run-infra-test" and body["token"]
    finally:
        sfn.stop_execution(executionArn=execution["executionArn"])


def test_every_checkov_skip_gives_its_reason():
    for logical_id, resource in template()["Resources"].items():
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
            assert len(skip.get("comment", "")) > 40, (logical_id, skip["id"])
