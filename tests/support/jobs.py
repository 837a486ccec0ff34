"""Job tokens made the way the dispatcher and the runner make them, for tests of what a job may do."""

from __future__ import annotations

from typing import Any


def job_token_for(services: Any, task_id: str, *, expires_in: float = 600, lease_seconds: int = 600) -> str:
    """A live job token of ``task_id``, made the way the dispatcher and the runner make one: the
    task is claimed for a job (or its current claim is taken as the job's), a single-use launch
    code is issued for that job and redeemed for the token."""
    import secrets

    from chalicelib.domain import clock, pipeline
    from chalicelib.domain.auth import Principal
    from chalicelib.domain.enums import PrincipalKind, TaskStatus
    from chalicelib.domain.requests import ClaimRequest

    task = services.repos.tasks.get(task_id)
    if task.status != TaskStatus.in_progress or not pipeline.lease_is_live(task, clock.now_iso()):
        setup = Principal(key_id="setup", name="setup", kind=PrincipalKind.admin)
        task, _ = services.tasks.claim(setup, ClaimRequest(stage=task.stage, agent_id="job-setup", task_id=task_id,
                                                           lease_seconds=lease_seconds))
    job_id = f"job_{secrets.token_hex(6)}"
    bound = task.model_copy(update={"job_id": job_id, "dispatch_seq": task.dispatch_seq + 1,
                                    "version": task.version + 1})
    services.repos.tasks.replace(bound, task.version)
    code = services.keys.issue_launch_code(bound, job_id, claim_id=bound.claim_id,
                                           expires_at=clock.plus_seconds(clock.now_iso(), 600),
                                           token_seconds=int(expires_in))
    launch = services.keys.authenticate(f"Bearer {code}")
    return services.keys.redeem_launch_code(launch, job_id)["token"]
