"""The one wiring point: builds AWS clients and services once per container (never per request,
never at import time, so tests and the local stack can point boto3 at moto first)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Optional

import boto3
from botocore.config import Config

from .adapters.dynamo import BatonStore
from .config import Settings
from .services.api_keys import KeyService
from .services.orchestration import Orchestrator
from .services.projects import ProjectService
from .services.runs import RunService
from .services.tasks import TaskService

CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=15, retries={"max_attempts": 4, "mode": "standard"},
                       max_pool_connections=50)


@dataclass
class Services:
    settings: Settings
    store: BatonStore
    keys: KeyService
    projects: ProjectService
    runs: RunService
    tasks: TaskService


_lock = threading.Lock()
_services: Optional[Services] = None


def client(service: str, settings: Settings):
    return boto3.session.Session().client(service, region_name=settings.region, config=CLIENT_CONFIG)


def build_services(settings: Settings, orchestrator: Optional[Orchestrator] = None) -> Services:
    store = BatonStore(client("dynamodb", settings), settings.table_name)
    orchestrator = orchestrator or Orchestrator()
    projects = ProjectService(store)
    return Services(settings=settings, store=store, keys=KeyService(store), projects=projects,
                    runs=RunService(store, projects, orchestrator), tasks=TaskService(store, orchestrator))


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
