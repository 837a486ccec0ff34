"""DynamoDB, translated: one table, one repository per aggregate.

* ``codec``: Python values to attribute values and back.
* ``keyspace``: the only place key strings are built (docs/data-model.md lists them).
* ``table``: the operations every repository is made of (get, query, conditional writes).
* ``audit``: ``AuditLog.commit``, the one writer of a run's audit log: a change's operations,
  the run's counters and the next event in one transaction.
* One repository per aggregate, each owning its items (``to_item``/``from_item``), its keys and
  its conditions: projects, runs, tasks, jobs, handoffs, proofs, findings, credentials (API
  keys, launch codes, job tokens), outbox, approvals, roles, settings, usage (a run's roll-up), attention (what waits for a person),
  state (a task's versioned key-value store), webhooks (with their deliveries), director (the director's
  records of runs and queues).

Services get them all as one ``Repositories`` (built once per container by ``bootstrap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ...domain.entities import Project
from . import keyspace

from .approvals import ApprovalRepository
from .attention import AttentionRepository
from .audit import AuditLog, Committed, RunEffect
from .credentials import CredentialRepository
from .director import DirectorRepository
from .findings import FindingRepository
from .handoffs import HandoffRepository
from .jobs import JobRepository
from .outbox import OutboxRepository
from .projects import ProjectRepository, item_to_project
from .proofs import ProofRepository
from .roles import RoleRepository
from .runs import RunRepository
from .settings import SettingsRepository
from .state import StateRepository
from .table import Page, Table, TransactionCancelledError
from .tasks import TaskRepository
from .usage import UsageRepository
from .webhooks import WebhookRepository


@dataclass
class Repositories:
    table: Table
    audit: AuditLog
    projects: ProjectRepository
    runs: RunRepository
    tasks: TaskRepository
    jobs: JobRepository
    handoffs: HandoffRepository
    proofs: ProofRepository
    findings: FindingRepository
    credentials: CredentialRepository
    outbox: OutboxRepository
    approvals: ApprovalRepository
    roles: RoleRepository
    settings: SettingsRepository
    usage: UsageRepository
    attention: AttentionRepository
    state: StateRepository
    webhooks: WebhookRepository
    director: DirectorRepository

    @property
    def client(self) -> Any:
        return self.table.client

    def run_project_and_settings(self, run_id: str, project_id: str) -> tuple[Optional[dict[str, Any]],
                                                                              Optional[Project], dict[str, Any]]:
        """A task's surroundings in one BatchGetItem: its run item, its project, the director settings."""
        wanted = {"run": keyspace.run(run_id), "project": keyspace.project(project_id),
                  "settings": keyspace.director_settings()}
        found = {item["pk"]: item for item in self.table.batch_get(list(wanted.values()))}
        project = found.get(wanted["project"]["pk"])
        return (found.get(wanted["run"]["pk"]), item_to_project(project) if project else None,
                found.get(wanted["settings"]["pk"]) or {})


def build_repositories(client: Any, table_name: str) -> Repositories:
    table = Table(client, table_name)
    outbox = OutboxRepository(table)
    tasks = TaskRepository(table)
    audit = AuditLog(table, outbox)
    return Repositories(table=table, audit=audit, projects=ProjectRepository(table),
                        runs=RunRepository(table, tasks, audit), tasks=tasks, jobs=JobRepository(table),
                        handoffs=HandoffRepository(table, tasks), proofs=ProofRepository(table, tasks),
                        findings=FindingRepository(table), credentials=CredentialRepository(table), outbox=outbox,
                        approvals=ApprovalRepository(table), roles=RoleRepository(table),
                        settings=SettingsRepository(table), usage=UsageRepository(table),
                        attention=AttentionRepository(table), state=StateRepository(table, tasks),
                        webhooks=WebhookRepository(table), director=DirectorRepository(table))


__all__ = ["ApprovalRepository", "AttentionRepository", "AuditLog", "Committed", "CredentialRepository",
           "DirectorRepository", "FindingRepository",
           "HandoffRepository", "JobRepository", "OutboxRepository", "Page", "ProjectRepository", "ProofRepository",
           "Repositories", "RoleRepository", "RunEffect", "RunRepository", "SettingsRepository", "StateRepository", "Table",
           "TaskRepository", "TransactionCancelledError", "UsageRepository", "WebhookRepository", "build_repositories"]
