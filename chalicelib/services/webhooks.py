"""Webhooks of a project: create (the secret shown once), list, delete, and their deliveries.

Humans and admins of the project manage and read them (``manage_project``): a webhook's URL may
itself be a credential (a chat's incoming-webhook URL), so agents do not see them. A URL is checked
when the webhook is created (``domain.webhooks.check_url``, and the addresses its host resolves to
now: ``adapters.webhook_http``) and again before every delivery; a host that does not resolve yet is
accepted (its deliveries fail and retry until it does).
"""

from __future__ import annotations

from typing import Optional

from ..adapters.dynamodb import Page, Repositories
from ..adapters.webhook_http import UnsafeAddressError, checked_addresses, resolve
from ..domain import clock, ids
from ..domain.auth import Action, Principal, authorize
from ..domain.errors import InvalidInputError, NotFoundError, RuleViolationError
from ..domain.ids import is_valid_id, new_id
from ..domain.webhook_addresses import check_url
from ..domain.webhooks import MAX_WEBHOOKS_PER_PROJECT, Webhook, WebhookCreate, WebhookCreated, new_secret
from .projects import ProjectService


class WebhookService:
    def __init__(self, repos: Repositories, projects: ProjectService, *, allow_loopback: bool = False,
                 resolver=resolve):
        self.repos = repos
        self.projects = projects
        self.allow_loopback = allow_loopback
        self.resolver = resolver

    def create(self, principal: Principal, project_id: str, request: WebhookCreate) -> WebhookCreated:
        self.projects.get(principal, project_id, Action.manage_project)
        try:
            _scheme, host, port = check_url(request.url, self.allow_loopback)
            checked_addresses(host, port, self.allow_loopback, self.resolver)
        except (ValueError, UnsafeAddressError) as refused:
            raise InvalidInputError(f"{refused}", code="invalid_webhook_url",
                                    details=[{"loc": ["url"], "msg": str(refused)}]) from None
        if len(self.repos.webhooks.of_project(project_id, MAX_WEBHOOKS_PER_PROJECT + 1)) >= MAX_WEBHOOKS_PER_PROJECT:
            raise RuleViolationError(f"project {project_id} has {MAX_WEBHOOKS_PER_PROJECT} webhooks already, the most "
                                     "it may have; remove one first", code="too_many_webhooks")
        secret = request.secret or new_secret()
        webhook = Webhook(id=new_id(ids.WEBHOOK), project_id=project_id, url=request.url, events=request.events,
                          format=request.format, created_at=clock.now_iso(), created_by=principal.actor)
        self.repos.webhooks.create(webhook, secret)
        return WebhookCreated(**webhook.model_dump(), secret=secret)

    def list(self, principal: Principal, project_id: str, limit: int, cursor: Optional[str]) -> Page:
        self.projects.get(principal, project_id, Action.manage_project)
        return self.repos.webhooks.list(project_id, limit, cursor)

    def get(self, principal: Principal, webhook_id: str) -> Webhook:
        found = self.repos.webhooks.get(webhook_id) if is_valid_id(webhook_id, ids.WEBHOOK) else None
        if found is None:
            raise NotFoundError("webhook not found")
        webhook, _secret = found
        authorize(principal, Action.manage_project, project_id=webhook.project_id, what="webhook")
        return webhook

    def delete(self, principal: Principal, webhook_id: str) -> Webhook:
        """The webhook stops at once: deliveries still queued are dropped when their turn comes."""
        webhook = self.get(principal, webhook_id)
        self.repos.webhooks.delete(webhook.id)
        return webhook

    def deliveries(self, principal: Principal, webhook_id: str, limit: int, cursor: Optional[str]) -> Page:
        webhook = self.get(principal, webhook_id)
        return self.repos.webhooks.deliveries(webhook.id, limit, cursor)


__all__ = ["WebhookService"]
