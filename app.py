"""Baton's Chalice app: registers the blueprints, middleware and event handlers; nothing else."""

from chalice import Chalice, ConvertToMiddleware, Rate

from chalicelib.api import approvals, director, keys, projects, roles, runs, system, tasks
from chalicelib.api import attention, context, findings, handoffs, jobs, proofs, state, usage
from chalicelib.api import dashboard, webhooks as webhook_routes, whoami
from chalicelib.api.middleware import authenticate_request
from chalicelib.observability import logger

app = Chalice(app_name="baton", configure_logs=False)
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context(clear_state=True)), "all")
app.register_middleware(authenticate_request, "http")

for blueprint in (system.bp, keys.bp, projects.bp, runs.bp, tasks.bp, approvals.bp, roles.bp,
                  handoffs.bp, proofs.bp, findings.bp, context.bp, director.bp, jobs.bp, usage.bp,
                  attention.bp, state.bp, whoami.bp, dashboard.bp, webhook_routes.bp):
    app.register_blueprint(blueprint)


# The queue name is the local/default one; the packaged template points the event source at the
# stack's own queue (infra/resources.yaml), with ReportBatchItemFailures switched on.
@app.on_sqs_message(queue="baton-dispatch", batch_size=10, name="dispatch")
def dispatch(event):
    from chalicelib.workers import dispatch_batch

    return dispatch_batch(event)


# The webhook queue (FIFO): deliveries in order per webhook and run, retried with backoff
# (infra/resources.yaml points the event source at the stack's queue, ReportBatchItemFailures on).
@app.on_sqs_message(queue="baton-webhooks.fifo", batch_size=10, name="webhooks")
def webhooks(event):
    from chalicelib.workers import deliver_webhooks

    return deliver_webhooks(event)


# The table's DynamoDB Stream: new PublishEvents outbox records, published off the request path.
# The ARN is a placeholder; the packaged template points the event source at the stack's table
# stream with its filter (only INSERTs of publish records), retries and batch window
# (infra/resources.yaml "Publish"); the local stack's StreamPump feeds it from moto.
@app.on_dynamodb_record(stream_arn="arn:aws:dynamodb:us-east-1:123456789012:table/baton-local/stream/local",
                        batch_size=100, starting_position="LATEST", name="publish",
                        maximum_batching_window_in_seconds=1)
def publish(event):
    from chalicelib.workers import publish_from_stream

    return publish_from_stream(event)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="sweep")
def sweep(event):
    from chalicelib.workers import sweep_once

    return sweep_once()
