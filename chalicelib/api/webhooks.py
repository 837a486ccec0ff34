"""Webhooks: POST/GET /projects/{project_id}/webhooks, DELETE /webhooks/{webhook_id},
GET /webhooks/{webhook_id}/deliveries (humans and admins of the project)."""

from chalice import Blueprint

from ..bootstrap import get_services
from ..domain.webhooks import Webhook, WebhookCreate, WebhookCreated, WebhookDelivery
from .http import endpoint, page_body, parse_body, principal
from .query import paging

bp = Blueprint(__name__)


@endpoint(bp, "/projects/{project_id}/webhooks", methods=["POST"], body=WebhookCreate, response=WebhookCreated,
          status=201, summary="Subscribe a URL to the project's events (the secret is shown once)")
def create_webhook(project_id):
    request = parse_body(bp.current_request.raw_body, WebhookCreate)
    return 201, get_services().webhooks.create(principal(), project_id, request)


@endpoint(bp, "/projects/{project_id}/webhooks", response=Webhook, lists=True, query=("limit", "cursor"),
          summary="List the project's webhooks (never their secrets)")
def list_webhooks(project_id):
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().webhooks.list(principal(), project_id, limit, cursor))


@endpoint(bp, "/webhooks/{webhook_id}", methods=["DELETE"], response=Webhook,
          summary="Remove a webhook (nothing more is delivered to it)")
def delete_webhook(webhook_id):
    return 200, get_services().webhooks.delete(principal(), webhook_id)


@endpoint(bp, "/webhooks/{webhook_id}/deliveries", response=WebhookDelivery, lists=True, query=("limit", "cursor"),
          summary="A webhook's deliveries, newest run first: pending, delivered or failed, with their attempts")
def list_deliveries(webhook_id):
    _, limit, cursor = paging(bp)
    return 200, page_body(get_services().webhooks.deliveries(principal(), webhook_id, limit, cursor))
