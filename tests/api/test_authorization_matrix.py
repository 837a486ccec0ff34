"""Who may call what: every route of the app × every kind of caller → the status it must answer.

The table ``MATRIX`` has one row per route (method, path) and one column per caller:

* ``none`` / ``bad``: no Authorization header / a well-formed key nobody issued → 401;
* ``admin``;
* ``human_a`` / ``agent_a``: keys of project ``alpha``, whose entities every row targets. Where the
  row is an agent's evidence write (handoffs, proofs, findings), ``agent_a`` holds a live claim of
  the target task and names it in ``Baton-Claim`` (contract v1.1, "Evidence under a claim");
* ``agent_a_unclaimed``: the same agent key holding no claim of the target task and sending no
  ``Baton-Claim`` → 409 ``claim_not_held`` on evidence writes, otherwise the same as ``agent_a``
  (heartbeat and advance carry their claim in the body, as ever);
* ``human_b`` / ``agent_b``: keys of project ``beta`` only → 404 for alpha's entities;
* ``job_own``: a live job token (bought with a launch code, ``job_token_for``) of the task the row
  targets (of a dedicated alpha task, ``task_job``, where the row targets no task);
  ``job_other``: a live job token of another task of alpha;
* ``launch``: an unredeemed launch code (``bl_...``) of a job of the target task (of ``task_job``
  where the row targets no task): it may only redeem itself → 403 everywhere else.

The test parametrizes over ``app.routes``, so a new route without a row fails. Each case builds
the entities it changes (a fresh task, run, handoff, proof, key or job) and its own credentials,
so the order of the cases does not matter; read-only cases share one world (two projects, a run
in each with tasks, roles relaxed). Besides the status, no refused answer (and no answer at all to
a caller of the other project) may carry an id or a title of entities the caller must not know.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest

from chalicelib.adapters.dynamodb import keyspace as store_keys
from chalicelib.adapters.dynamodb.codec import serialize
from chalicelib.domain import clock, ids, pipeline
from chalicelib.domain.auth import Principal
from chalicelib.domain.entities import AttentionItem
from chalicelib.domain.enums import AttentionKind, PrincipalKind, TaskStatus
from chalicelib.domain.requests import ClaimRequest, KeyCreate
from chalicelib.services.api_keys import hash_key
from tests.support.api import Api, relax_roles, start_run
from tests.support.aws import moto_services
from tests.support.jobs import job_token_for

import app as app_module

PRINCIPALS = ("none", "bad", "admin", "human_a", "human_b", "agent_a", "agent_a_unclaimed", "agent_b",
              "job_own", "job_other", "launch")

# fmt: off
#                                                    none bad  adm  h_a  h_b  a_a  a_nc a_b  jown joth lnch
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    # system (public)
    ("GET",    "/status"):                          (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/openapi.json"):                    (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    # the dashboard's page and assets (public: the page asks for a key; every data call carries one)
    ("GET",    "/ui"):                              (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    ("GET",    "/ui/{asset}"):                      (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    # who the caller is: every credential but a launch code
    ("GET",    "/whoami"):                          (401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 403),
    # keys: admin only
    ("POST",   "/keys"):                            (401, 401, 201, 403, 403, 403, 403, 403, 403, 403, 403),
    ("GET",    "/keys"):                            (401, 401, 200, 403, 403, 403, 403, 403, 403, 403, 403),
    ("DELETE", "/keys/{key_id}"):                   (401, 401, 200, 403, 403, 403, 403, 403, 403, 403, 403),
    # jobs: a launch code buys its job's token, once; no key may (403 before anything is looked up)
    ("POST",   "/jobs/{job_id}/token"):             (401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 201),
    # projects
    ("POST",   "/projects"):                        (401, 401, 201, 201, 403, 403, 403, 403, 403, 403, 403),
    ("GET",    "/projects"):                        (401, 401, 200, 200, 200, 200, 200, 200, 403, 403, 403),
    ("GET",    "/projects/{project_id}"):           (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    ("PATCH",  "/projects/{project_id}"):           (401, 401, 200, 200, 404, 403, 403, 404, 403, 403, 403),
    # runs
    ("POST",   "/projects/{project_id}/runs"):      (401, 401, 201, 201, 404, 403, 403, 404, 403, 403, 403),
    ("GET",    "/projects/{project_id}/runs"):      (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    ("GET",    "/runs/{run_id}"):                   (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    ("GET",    "/runs/{run_id}/progress"):          (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    ("DELETE", "/runs/{run_id}"):                   (401, 401, 200, 200, 404, 403, 403, 404, 403, 403, 403),
    ("GET",    "/runs/{run_id}/tasks"):             (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    ("POST",   "/runs/{run_id}/tasks"):             (401, 401, 201, 201, 404, 403, 403, 404, 403, 403, 403),
    ("GET",    "/runs/{run_id}/events"):            (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    # approvals: humans decide, nobody else (admins neither)
    ("GET",    "/runs/{run_id}/approvals"):         (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    ("POST",   "/runs/{run_id}/approvals/{gate}"):  (401, 401, 403, 200, 404, 403, 403, 404, 403, 403, 403),
    # rollback: humans only, like a gate (409 here: the run never released, so nothing changes)
    ("POST",   "/runs/{run_id}/rollback"):          (401, 401, 403, 409, 404, 403, 403, 404, 403, 403, 403),
    # usage: reported like evidence (an agent under its live claim), read like progress
    ("POST",   "/tasks/{task_id}/usage"):           (401, 401, 201, 201, 404, 201, 409, 404, 201, 404, 403),
    ("GET",    "/runs/{run_id}/usage"):             (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    # task state: like evidence, an agent reads and writes it only under its live claim of the task
    ("GET",    "/tasks/{task_id}/state"):           (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    ("PUT",    "/tasks/{task_id}/state/{name}"):    (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    ("GET",    "/tasks/{task_id}/state/{name}"):    (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    ("DELETE", "/tasks/{task_id}/state/{name}"):    (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    ("POST",   "/tasks/{task_id}/state/{name}/upload"):  (401, 401, 201, 201, 404, 201, 409, 404, 201, 404, 403),
    ("POST",   "/tasks/{task_id}/state/{name}/confirm"): (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    # attention: everyone reads what waits in its projects; humans and admins resolve
    ("GET",    "/attention"):                       (401, 401, 200, 200, 200, 200, 200, 200, 403, 403, 403),
    ("POST",   "/attention/{item_id}/resolve"):     (401, 401, 200, 200, 404, 403, 403, 404, 403, 403, 403),
    # tasks and the queue (heartbeat and advance: the claim is in the body, no Baton-Claim needed)
    ("GET",    "/tasks/{task_id}"):                 (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("POST",   "/queue/claim"):                     (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("POST",   "/tasks/{task_id}/heartbeat"):       (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("POST",   "/tasks/{task_id}/advance"):         (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("POST",   "/tasks/{task_id}/stage"):           (401, 401, 200, 200, 404, 403, 403, 404, 403, 404, 403),
    ("GET",    "/tasks/{task_id}/context"):         (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    # roles: everyone reads (the runner checks its pinned config), admins publish
    ("GET",    "/roles"):                           (401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 403),
    ("GET",    "/roles/{role}"):                    (401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 403),
    ("PUT",    "/roles/{role}"):                    (401, 401, 200, 403, 403, 403, 403, 403, 403, 403, 403),
    ("GET",    "/roles/{role}/versions"):           (401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 403),
    # director settings: everyone but a job token reads (its context carries them), admins change
    ("GET",    "/director/settings"):               (401, 401, 200, 200, 200, 200, 200, 200, 403, 403, 403),
    ("PATCH",  "/director/settings"):               (401, 401, 200, 403, 403, 403, 403, 403, 403, 403, 403),
    # handoffs: an agent writes only under a live claim of the task (contract v1.1), else 409
    ("POST",   "/tasks/{task_id}/handoffs"):        (401, 401, 201, 201, 404, 201, 409, 404, 201, 404, 403),
    ("GET",    "/tasks/{task_id}/handoffs"):        (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("GET",    "/handoffs/{handoff_id}"):           (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("POST",   "/handoffs/{handoff_id}/accept"):    (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    ("POST",   "/handoffs/{handoff_id}/complete"):  (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    ("POST",   "/handoffs/{handoff_id}/fail"):      (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    # proofs: the same claim rule for declaring and confirming
    ("POST",   "/tasks/{task_id}/proofs"):          (401, 401, 201, 201, 404, 201, 409, 404, 201, 404, 403),
    ("GET",    "/tasks/{task_id}/proofs"):          (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("POST",   "/proofs/{proof_id}/confirm"):       (401, 401, 200, 200, 404, 200, 409, 404, 200, 404, 403),
    ("GET",    "/proofs/{proof_id}"):               (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("GET",    "/proofs/{proof_id}/download"):      (401, 401, 302, 302, 404, 302, 302, 404, 302, 404, 403),
    ("GET",    "/proofs/{proof_id}/text"):          (401, 401, 200, 200, 404, 200, 200, 404, 200, 404, 403),
    ("GET",    "/projects/{project_id}/proofs"):    (401, 401, 200, 200, 404, 200, 200, 404, 403, 403, 403),
    # findings (the claim rule again) and bugs (not evidence of a task: no claim needed)
    ("POST",   "/tasks/{task_id}/findings"):        (401, 401, 201, 201, 404, 201, 409, 404, 201, 404, 403),
    ("POST",   "/projects/{project_id}/bugs"):      (401, 401, 201, 201, 404, 201, 201, 404, 403, 403, 403),
    # webhooks: the project's humans and admins (a webhook URL may itself be a credential)
    ("POST",   "/projects/{project_id}/webhooks"):  (401, 401, 201, 201, 404, 403, 403, 404, 403, 403, 403),
    ("GET",    "/projects/{project_id}/webhooks"):  (401, 401, 200, 200, 404, 403, 403, 404, 403, 403, 403),
    ("DELETE", "/webhooks/{webhook_id}"):           (401, 401, 200, 200, 404, 403, 403, 404, 403, 403, 403),
    ("GET",    "/webhooks/{webhook_id}/deliveries"): (401, 401, 200, 200, 404, 403, 403, 404, 403, 403, 403),
}
# fmt: on

PROJECT_A, PROJECT_B = "alpha", "beta"
NEW_PROJECT = "alpha-extra"          # listed in human_a's key, not created: the human may create it
DATA = b"matrix proof\n"
REFUSED = (401, 403, 404)
CLAIMED_WRITE = 409   # an agent's evidence write without a live claim of the task: claim_not_held
SETUP = Principal(key_id="setup", name="setup", kind=PrincipalKind.admin)


def app_routes() -> list[tuple[str, str]]:
    return sorted((method, path) for path, methods in app_module.app.routes.items() for method in methods)


# ---------------------------------------------------------------- the world, built once per module


@dataclass
class World:
    services: Any
    admin: Api
    keys: dict[str, Optional[str]]
    run_a: dict[str, Any]
    task_read: str                      # alpha task read by the read-only rows (never advanced)
    task_other: str                     # alpha task of job_other's token (never advanced)
    task_job: str                       # alpha task of job_own's token / the launch code where a row names no task
    handoff_read: str
    proof_read: str
    pm_spec: dict[str, Any]
    strings_a: set[str] = field(default_factory=set)     # ids and titles of alpha's entities
    strings_b: set[str] = field(default_factory=set)     # ... of beta's

    def as_(self, key: Optional[str]) -> Api:
        return self.admin.as_key(key)

    def job_token(self, task_id: str, expires_in: float = 600) -> str:
        return job_token_for(self.services, task_id, expires_in=expires_in)

    def launch_code(self, task_id: str) -> tuple[str, str]:
        return launch_code_for(self.services, task_id)

    def agent_claim(self, task_id: str, lease_seconds: int = 900) -> str:
        """agent_a claims the task itself; the claim id is what it names in ``Baton-Claim``."""
        response = self.as_(self.keys["agent_a"]).post(
            "/queue/claim", {"stage": "dev", "agent_id": "matrix-agent", "project_id": PROJECT_A,
                             "task_id": task_id, "lease_seconds": lease_seconds})
        assert response.status_code == 200, response.data
        return response.data["claim"]["claim_id"]

    # ---- fresh entities, made by the admin

    def fresh_task(self, title: str = "fresh task") -> str:
        response = self.admin.post(f"/runs/{self.run_a['id']}/tasks", {"title": title})
        assert response.status_code == 201, response.data
        return response.data["id"]

    def claim(self, task_id: str, stage: str = "dev") -> str:
        response = self.admin.post("/queue/claim", {"stage": stage, "agent_id": "setup", "project_id": PROJECT_A,
                                                    "task_id": task_id})
        assert response.status_code == 200, response.data
        return response.data["claim"]["claim_id"]

    def fresh_handoff(self, task_id: str) -> str:
        response = self.admin.post(f"/tasks/{task_id}/handoffs", HANDOFF)
        assert response.status_code == 201, response.data
        return response.data["id"]

    def declared_proof(self, task_id: str) -> dict[str, Any]:
        response = self.admin.post(f"/tasks/{task_id}/proofs", PROOF)
        assert response.status_code == 201, response.data
        proof = response.data["proof"]
        self.services.proofs.objects.client.put_object(Bucket=self.services.settings.bucket, Key=proof["s3_key"],
                                                       Body=DATA, ContentType="text/plain")
        return proof

    def fresh_run(self, **fields: Any) -> dict[str, Any]:
        run = start_run(self.admin, PROJECT_A, tasks=1, **{"stages": ["dev"], **fields})
        run["task_id"] = self.admin.get(f"/runs/{run['id']}/tasks").data["items"][0]["id"]
        return run


def launch_code_for(services: Any, task_id: str, *, token_seconds: int = 600) -> tuple[str, str]:
    """(job_id, launch code) of a new job of ``task_id``, made as ``job_token_for`` makes one (the task
    claimed for the job, or its live claim taken as the job's), but not redeemed."""
    task = services.repos.tasks.get(task_id)
    if task.status != TaskStatus.in_progress or not pipeline.lease_is_live(task, clock.now_iso()):
        task, _ = services.tasks.claim(SETUP, ClaimRequest(stage=task.stage, agent_id="job-setup", task_id=task_id,
                                                           lease_seconds=600))
    job_id = f"job_{secrets.token_hex(6)}"
    bound = task.model_copy(update={"job_id": job_id, "dispatch_seq": task.dispatch_seq + 1,
                                    "version": task.version + 1})
    services.repos.tasks.replace(bound, task.version)
    code = services.keys.issue_launch_code(bound, job_id, claim_id=bound.claim_id,
                                           expires_at=clock.plus_seconds(clock.now_iso(), 600),
                                           token_seconds=token_seconds)
    return job_id, code


HANDOFF = {"from_role": "dev", "to_role": "qa", "summary": "matrix handoff", "confidence": "high"}
PROOF = {"type": "log", "filename": "matrix.log", "content_type": "text/plain", "size": len(DATA),
         "sha256": hashlib.sha256(DATA).hexdigest()}


def strings_of(value: Any) -> set[str]:
    """Every id and title in an API answer (the entities a caller would learn about)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for name, item in value.items():
            if isinstance(item, str) and (name in ("id", "title", "name", "filename", "repository_url")
                                          or name.endswith("_id")):
                found.add(item)
            else:
                found |= strings_of(item)
    elif isinstance(value, list):
        for item in value:
            found |= strings_of(item)
    return found


@pytest.fixture(scope="module")
def world():
    from chalice.test import Client

    with moto_services() as services, Client(app_module.app) as client:
        yield build_world(services, Api(client, services.keys.bootstrap_admin()[1]))


def build_world(services: Any, admin: Api) -> World:
    relax_roles(admin)
    projects = {}
    for pid, name in ((PROJECT_A, "Alpha Secret Project"), (PROJECT_B, "Beta Secret Project")):
        response = admin.post("/projects", {"id": pid, "name": name,
                                            "repository_url": f"https://example.com/{pid}-secret.git"})
        assert response.status_code == 201, response.data
        projects[pid] = response.data

    def key(kind: PrincipalKind, project_ids: list[str]) -> str:
        return services.keys.issue(KeyCreate(name=f"matrix-{kind.value}", principal=kind, project_ids=project_ids),
                                   "matrix")[1]

    keys: dict[str, Optional[str]] = {
        "none": None, "bad": "bt_" + secrets.token_urlsafe(32), "admin": admin.key,
        "human_a": key(PrincipalKind.human, [PROJECT_A, NEW_PROJECT]), "human_b": key(PrincipalKind.human, [PROJECT_B]),
        "agent_a": key(PrincipalKind.agent, [PROJECT_A]), "agent_b": key(PrincipalKind.agent, [PROJECT_B]),
    }
    keys["agent_a_unclaimed"] = keys["agent_a"]   # the same key; what differs is the claim it holds
    runs, tasks = {}, {}
    for pid in (PROJECT_A, PROJECT_B):
        response = admin.post(f"/projects/{pid}/runs", {"title": f"{pid}-secret-run", "stages": ["dev", "qa"],
                                                        "tasks": [{"title": f"{pid}-secret-task-{n}"}
                                                                  for n in range(3)]})
        assert response.status_code == 201, response.data
        runs[pid] = response.data
        tasks[pid] = admin.get(f"/runs/{runs[pid]['id']}/tasks").data["items"]
    world = World(services=services, admin=admin, keys=keys, run_a=runs[PROJECT_A],
                  task_read=tasks[PROJECT_A][0]["id"], task_other=tasks[PROJECT_A][1]["id"],
                  task_job=tasks[PROJECT_A][2]["id"], handoff_read="", proof_read="", pm_spec={})
    world.handoff_read = world.fresh_handoff(world.task_read)
    proof = world.declared_proof(world.task_read)
    assert admin.post(f"/proofs/{proof['id']}/confirm").status_code == 200
    world.proof_read = proof["id"]
    # beta gets evidence too, so its ids are there to leak
    beta_task = tasks[PROJECT_B][0]["id"]
    beta_handoff = admin.post(f"/tasks/{beta_task}/handoffs", HANDOFF).data
    beta_proof = admin.post(f"/tasks/{beta_task}/proofs", PROOF).data["proof"]
    pm = admin.get("/roles/pm").data
    world.pm_spec = {k: pm[k] for k in ("prompt", "executor", "command", "image", "required_proofs",
                                        "timeout_seconds", "heartbeat_seconds")}
    # job_own, job_other and launch get a credential of their own in each case (see ``credential``): a
    # job token dies with its job, and every new job token of a task ends the task's previous job.

    def own(pid: str) -> set[str]:
        return {s for s in strings_of([projects[pid], runs[pid], tasks[pid]]) if s not in (PROJECT_A, PROJECT_B)}

    world.strings_a = own(PROJECT_A) | {world.handoff_read, world.proof_read}
    world.strings_b = own(PROJECT_B) | {beta_handoff["id"], beta_proof["id"]}
    world.strings_a.discard("matrix.log")
    world.strings_b.discard("matrix.log")
    assert {"Alpha Secret Project", "alpha-secret-run", world.task_read} <= world.strings_a
    assert {"Beta Secret Project", "beta-secret-run", beta_task} <= world.strings_b
    return world


# ---------------------------------------------------------------- one case per (route, caller)


@dataclass
class Target:
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    task_id: Optional[str] = None       # the task job_own's token (and the launch code) is issued for
    strings: set[str] = field(default_factory=set)   # ids/titles of the fresh entities of this case
    headers: dict[str, str] = field(default_factory=dict)   # Baton-Claim, for agent_a's evidence writes
    launch_code: Optional[str] = None   # the launch caller's code, where the row needs that very code


def on_task(task_id: str, body: Any = None) -> Target:
    return Target({"task_id": task_id}, body, task_id)


def fresh(world: World, who: str) -> str:
    return f"matrix-{who}-{secrets.token_hex(3)}"


def target_delete_key(world: World, who: str) -> Target:
    api_key, _ = world.services.keys.issue(KeyCreate(name=fresh(world, who), principal=PrincipalKind.agent,
                                                     project_ids=[PROJECT_A]), "matrix")
    return Target({"key_id": api_key.id})


def target_create_project(world: World, who: str) -> Target:
    project_id = fresh(world, "p") if who == "admin" else NEW_PROJECT
    return Target(body={"id": project_id, "name": "New project", "repository_url": "https://example.com/new.git"})


def target_fresh_run(world: World, who: str) -> Target:
    run = world.fresh_run(title=fresh(world, "run"))
    return Target({"run_id": run["id"]}, None, run["task_id"], {run["id"], run["title"], run["task_id"]})


def target_gate(world: World, who: str) -> Target:
    run = world.fresh_run(title=fresh(world, "gated"), deploy_gate=True)
    claim_id = world.claim(run["task_id"])
    advanced = world.admin.post(f"/tasks/{run['task_id']}/advance", {"claim_id": claim_id, "result": "pass"})
    assert advanced.status_code == 200, advanced.data
    assert world.admin.get(f"/runs/{run['id']}").data["status"] == "awaiting_approval"
    # The run's only task is done, and a job token of an ended job is 401 whatever it calls: job_own and
    # launch hold credentials of world.task_job (a live job of alpha) instead, so the 403 is about the right.
    return Target({"run_id": run["id"], "gate": "deploy"}, {"decision": "approve", "comment": "matrix"},
                  None, {run["id"], run["title"], run["task_id"]})


def target_fresh_task(body: Callable[[World, str], Any]) -> Callable[[World, str], Target]:
    def build(world: World, who: str) -> Target:
        title = fresh(world, "task")
        task_id = world.fresh_task(title)
        target = on_task(task_id, body(world, task_id))
        target.strings = {task_id, title}
        return target
    return build


def target_claimed_task(result: Optional[str]) -> Callable[[World, str], Target]:
    def build(world: World, who: str) -> Target:
        title = fresh(world, "task")
        task_id = world.fresh_task(title)
        claim_id = world.claim(task_id)
        body = {"claim_id": claim_id} if result is None else {"claim_id": claim_id, "result": result}
        target = on_task(task_id, body)
        target.strings = {task_id, title}
        return target
    return build


def claim_of(world: World, who: str, task_id: str) -> dict[str, str]:
    """The headers of an evidence write on ``task_id``: agent_a claims the task and names its claim in
    ``Baton-Claim`` (contract v1.1). Nobody else claims here: admins and humans may always write,
    job_own's token carries the claim its job was launched with, agent_a_unclaimed holds none."""
    return {"Baton-Claim": world.agent_claim(task_id)} if who == "agent_a" else {}


def fresh_titled_task(world: World) -> tuple[str, str]:
    title = fresh(world, "task")
    return world.fresh_task(title), title


# The evidence writes target a fresh task each (they used to write on world.task_read): an agent may
# write only under its own live claim of the task, so each case needs a task nobody else has claimed.
def target_evidence(body: Any) -> Callable[[World, str], Target]:
    def build(world: World, who: str) -> Target:
        task_id, title = fresh_titled_task(world)
        return Target({"task_id": task_id}, body, task_id, {task_id, title}, claim_of(world, who, task_id))
    return build


def target_handoff(accepted: bool) -> Callable[[World, str], Target]:
    def build(world: World, who: str) -> Target:
        task_id, title = fresh_titled_task(world)
        handoff_id = world.fresh_handoff(task_id)
        if accepted:
            assert world.admin.post(f"/handoffs/{handoff_id}/accept", {}).status_code == 200
        return Target({"handoff_id": handoff_id}, {"notes": "matrix"}, task_id, {handoff_id, task_id, title},
                      claim_of(world, who, task_id))
    return build


def target_uploaded_proof(world: World, who: str) -> Target:
    task_id, title = fresh_titled_task(world)
    proof = world.declared_proof(task_id)
    return Target({"proof_id": proof["id"]}, None, task_id, {proof["id"], task_id, title},
                  claim_of(world, who, task_id))


STATE_BYTES = b'{"n":1}'


def target_state(action: str) -> Callable[[World, str], Target]:
    """A fresh task with (for reads, deletes and confirmations) what the call needs in its state."""
    def build(world: World, who: str) -> Target:
        task_id, title = fresh_titled_task(world)
        base = f"/tasks/{task_id}/state/matrix"
        if action in ("get", "delete", "list"):
            assert world.admin.call("PUT", base, {"value": {"n": 1}}).status_code == 200
        if action == "confirm":
            asked = world.admin.post(f"{base}/upload", {"size": len(STATE_BYTES),
                                                        "sha256": hashlib.sha256(STATE_BYTES).hexdigest()})
            assert asked.status_code == 201, asked.data
            world.services.proofs.objects.client.put_object(
                Bucket=world.services.settings.bucket, Key=asked.data["upload"]["fields"]["key"], Body=STATE_BYTES,
                ContentType="application/json")
        body = {"put": {"value": {"n": 2}}, "upload": {"size": 7, "sha256": "0" * 64}, "confirm": {}}.get(action)
        params = {"task_id": task_id} if action == "list" else {"task_id": task_id, "name": "matrix"}
        return Target(params, body, task_id, {task_id, title}, claim_of(world, who, task_id))
    return build


def target_attention(world: World, who: str) -> Target:
    """An open attention item of project alpha (a task reported stuck), fresh for each case."""
    item = AttentionItem(id=ids.new_id(ids.ATTENTION), kind=AttentionKind.stuck, project_id=PROJECT_A,
                         run_id=world.run_a["id"], summary=f"stuck {who}", created_at=clock.now_iso())
    repos = world.services.repos
    repos.table.transact([repos.attention.open_op(item)])
    return Target({"item_id": item.id}, {"comment": "seen"}, None, {item.id, f"stuck {who}"})


def target_webhook(world: World, who: str) -> Target:
    """A webhook of project alpha, fresh for each case (its URL is alpha's to know)."""
    url = f"https://hooks.example.com/{fresh(world, who)}"
    response = world.admin.post(f"/projects/{PROJECT_A}/webhooks", {"url": url, "events": ["run.*"]})
    assert response.status_code == 201, response.data
    return Target({"webhook_id": response.data["id"]}, strings={url, response.data["id"], response.data["secret"]})


def target_read_webhook(world: World, who: str) -> Target:
    """One webhook of project alpha for every read case (a project holds at most 20)."""
    if not hasattr(world, "webhook_read"):
        world.webhook_read = target_webhook(world, "reader")   # type: ignore[attr-defined]
    return world.webhook_read   # type: ignore[attr-defined]


def target_redeem(world: World, who: str) -> Target:
    """A real job with its launch code: only that code redeems it; any key naming the job is 403."""
    task_id, title = fresh_titled_task(world)
    job_id, code = world.launch_code(task_id)
    return Target({"job_id": job_id}, None, task_id, {task_id, title, job_id}, launch_code=code)


TARGETS: dict[tuple[str, str], Callable[[World, str], Target]] = {
    ("POST", "/keys"): lambda w, who: Target(body={"name": fresh(w, who), "principal": "agent",
                                                   "project_ids": [PROJECT_A]}),
    ("GET", "/ui/{asset}"): lambda w, who: Target({"asset": "app.js"}),
    ("DELETE", "/keys/{key_id}"): target_delete_key,
    ("POST", "/projects"): target_create_project,
    ("PATCH", "/projects/{project_id}"): lambda w, who: Target({"project_id": PROJECT_A}, {"primary_branch": "main"}),
    ("POST", "/projects/{project_id}/runs"): lambda w, who: Target(
        {"project_id": PROJECT_A}, {"title": fresh(w, who), "stages": ["dev"], "tasks": [{"title": "t"}]}),
    ("DELETE", "/runs/{run_id}"): target_fresh_run,
    ("POST", "/runs/{run_id}/tasks"): lambda w, who: Target({"run_id": w.run_a["id"]}, {"title": fresh(w, who)}),
    ("POST", "/runs/{run_id}/approvals/{gate}"): target_gate,
    ("POST", "/attention/{item_id}/resolve"): target_attention,
    ("GET", "/tasks/{task_id}/state"): target_state("list"),
    ("PUT", "/tasks/{task_id}/state/{name}"): target_state("put"),
    ("GET", "/tasks/{task_id}/state/{name}"): target_state("get"),
    ("DELETE", "/tasks/{task_id}/state/{name}"): target_state("delete"),
    ("POST", "/tasks/{task_id}/state/{name}/upload"): target_state("upload"),
    ("POST", "/tasks/{task_id}/state/{name}/confirm"): target_state("confirm"),
    ("POST", "/runs/{run_id}/rollback"): lambda w, who: Target({"run_id": w.run_a["id"]}, {"reason": "matrix"}),
    ("POST", "/tasks/{task_id}/usage"): target_evidence({"model": "m", "tokens_in": 1, "tokens_out": 1,
                                                         "cost_usd": 0.01}),
    ("POST", "/queue/claim"): lambda w, who: (lambda t: Target(
        {}, {"stage": "dev", "agent_id": "matrix", "project_id": PROJECT_A, "task_id": t}, t, {t}))(w.fresh_task()),
    ("POST", "/tasks/{task_id}/heartbeat"): target_claimed_task(None),
    ("POST", "/tasks/{task_id}/advance"): target_claimed_task("pass"),
    ("POST", "/tasks/{task_id}/stage"): target_fresh_task(lambda w, t: {"stage": "qa", "reason": "matrix"}),
    ("PUT", "/roles/{role}"): lambda w, who: Target({"role": "pm"}, w.pm_spec),   # same spec: no new version
    ("PATCH", "/director/settings"): lambda w, who: Target(body={"max_iterations_default": 3}),   # the default
    ("POST", "/jobs/{job_id}/token"): target_redeem,
    ("POST", "/tasks/{task_id}/handoffs"): target_evidence(HANDOFF),
    ("POST", "/handoffs/{handoff_id}/accept"): target_handoff(accepted=False),
    ("POST", "/handoffs/{handoff_id}/complete"): target_handoff(accepted=True),
    ("POST", "/handoffs/{handoff_id}/fail"): target_handoff(accepted=False),
    ("POST", "/tasks/{task_id}/proofs"): target_evidence(PROOF),
    ("POST", "/proofs/{proof_id}/confirm"): target_uploaded_proof,
    ("POST", "/tasks/{task_id}/findings"): target_evidence({"format": "security_report", "report": {"findings": []}}),
    ("POST", "/projects/{project_id}/bugs"): lambda w, who: Target(
        {"project_id": PROJECT_A}, {"title": fresh(w, who), "severity": "low"}),
    ("POST", "/projects/{project_id}/webhooks"): lambda w, who: Target(
        {"project_id": PROJECT_A}, {"url": f"https://hooks.example.com/{fresh(w, who)}", "events": ["run.*"]}),
    ("DELETE", "/webhooks/{webhook_id}"): target_webhook,
    ("GET", "/webhooks/{webhook_id}/deliveries"): target_read_webhook,
}


def read_target(world: World, path: str) -> Target:
    """The shared alpha entity a read-only row names."""
    known = {"project_id": PROJECT_A, "run_id": world.run_a["id"], "task_id": world.task_read,
             "handoff_id": world.handoff_read, "proof_id": world.proof_read, "role": "dev"}
    params = {name: value for name, value in known.items() if "{" + name + "}" in path}
    return Target(params, None, world.task_read)


def credential(world: World, who: str, target: Target) -> Optional[str]:
    """The caller's key for this case; job tokens and launch codes are made for the case itself."""
    task_id = target.task_id or world.task_job
    if who == "job_own":
        return world.job_token(task_id)
    if who == "job_other":
        return world.job_token(world.task_other)
    if who == "launch":
        return target.launch_code or world.launch_code(task_id)[1]
    return world.keys[who]


def case_id(route: tuple[str, str], who: str) -> str:
    return f"{route[0]} {route[1]} as {who}"


CASES = [(route, who) for route in app_routes() for who in PRINCIPALS]


def test_every_route_has_a_row_and_every_row_a_route():
    routes = set(app_routes())
    assert sorted(routes - set(MATRIX)) == [], "routes without a row in MATRIX: add them"
    assert sorted(set(MATRIX) - routes) == [], "rows of MATRIX for routes the app does not have"
    assert all(len(row) == len(PRINCIPALS) for row in MATRIX.values())


@pytest.mark.parametrize("route,who", CASES, ids=[case_id(r, w) for r, w in CASES])
def test_matrix(world: World, route: tuple[str, str], who: str):
    if route not in MATRIX:
        pytest.fail(f"{route[0]} {route[1]} has no row in MATRIX: say who may call it")
    expected = MATRIX[route][PRINCIPALS.index(who)]
    method, template = route
    build = TARGETS.get(route)
    target = build(world, who) if build else read_target(world, template)
    key = credential(world, who, target)
    path = template.format(**target.params)
    response = world.as_(key).call(method, path, target.body, headers=target.headers)
    assert response.status_code == expected, (f"{method} {path} as {who}: {response.status_code} "
                                              f"{response.body[:300]!r}, expected {expected}")

    text = (response.body.decode() if isinstance(response.body, bytes) else str(response.body or "")) + \
        json.dumps(dict(response.headers or {}))
    if expected == CLAIMED_WRITE:
        # A 409 past authorization: the claim rule, or (rollback) the alpha run that never released.
        wanted = "run_not_released" if route == ("POST", "/runs/{run_id}/rollback") else "claim_not_held"
        assert response.data["error"]["code"] == wanted, response.body
    if expected in REFUSED:
        assert response.data and response.data["error"]["code"], response.body
        secret = world.strings_a | world.strings_b | target.strings
    elif who in ("none", "bad", "human_b", "agent_b"):
        secret = world.strings_a | target.strings
    elif who in ("human_a", "agent_a", "agent_a_unclaimed", "job_own", "job_other", "launch"):
        secret = set(world.strings_b)
    else:
        secret = set()
    leaked = sorted(s for s in secret if s and s in text)
    assert leaked == [], f"{method} {path} as {who} answered foreign data: {leaked}"


# ---------------------------------------------------------------- the rules the matrix cannot show


def test_a_job_token_past_its_expiry_is_401(world: World):
    token = world.job_token(world.task_read, expires_in=-1)
    response = world.as_(token).get(f"/tasks/{world.task_read}")
    assert response.status_code == 401
    assert response.data["error"]["code"] == "expired_credentials"
    assert world.as_(world.job_token(world.task_read)).get(f"/tasks/{world.task_read}").status_code == 200


def test_a_job_token_without_a_task_or_an_expiry_is_refused(world: World):
    token = world.job_token(world.task_read)
    store = world.services.repos.table
    key = serialize(store_keys.api_key(hash_key(token)))
    assert store.client.get_item(TableName=store.name, Key=key).get("Item")
    store.client.update_item(TableName=store.name, Key=key, UpdateExpression="REMOVE expires_at")
    assert world.as_(token).get(f"/tasks/{world.task_read}").status_code == 401


def test_revoking_a_key_takes_effect_on_the_next_request(world: World):
    api_key, key = world.services.keys.issue(KeyCreate(name="short-lived", principal=PrincipalKind.human,
                                                       project_ids=[PROJECT_A]), "matrix")
    human = world.as_(key)
    assert human.get(f"/runs/{world.run_a['id']}").status_code == 200
    assert world.admin.delete(f"/keys/{api_key.id}").status_code == 200
    refused = human.get(f"/runs/{world.run_a['id']}")
    assert refused.status_code == 401 and refused.data["error"]["code"] == "invalid_credentials"
    # a mutating call with an Idempotency-Key is refused too (no replay of an earlier answer)
    body = {"title": "after revocation"}
    assert human.post(f"/runs/{world.run_a['id']}/tasks", body,
                      headers={"Idempotency-Key": "3f1d2c4e-0000-4000-8000-000000000001"}).status_code == 401


def test_an_admin_key_revoked_is_refused_too(world: World):
    api_key, key = world.services.keys.issue(KeyCreate(name="admin-2", principal=PrincipalKind.admin), "matrix")
    assert world.as_(key).get("/keys").status_code == 200
    assert world.admin.delete(f"/keys/{api_key.id}").status_code == 200
    assert world.as_(key).get("/keys").status_code == 401


def test_a_job_token_claims_only_its_own_task(world: World):
    own = world.fresh_task()
    other = world.fresh_task()
    token = world.as_(world.job_token(own))
    # A job token is now bought with a launch code for a job whose task is already claimed for it (the
    # heartbeat clock starts at launch), so its task is in progress under the job's claim from the start:
    # that replaces the former "own is still queued" check; "nothing was claimed instead" is now "the
    # job's claim is unchanged".
    launched = world.services.repos.tasks.get(own)
    assert launched.status.value == "in_progress" and launched.claim_id
    named_other = token.post("/queue/claim", {"stage": "dev", "agent_id": "j", "task_id": other})
    assert named_other.status_code == 404
    assert world.services.repos.tasks.get(other).status.value == "queued"
    after = world.services.repos.tasks.get(own)
    assert (after.status, after.claim_id, after.claimed_by) == (launched.status, launched.claim_id, launched.claimed_by)
    # its claim call, naming no task or naming its own, gets the job's own claim back (a re-claim)
    claimed = token.post("/queue/claim", {"stage": "dev", "agent_id": "j"})
    assert claimed.status_code == 200 and claimed.data["task"]["id"] == own
    assert claimed.data["claim"]["claim_id"] == launched.claim_id
    named_own = token.post("/queue/claim", {"stage": "dev", "agent_id": "j", "task_id": own})
    assert named_own.status_code == 200 and named_own.data["claim"]["claim_id"] == launched.claim_id
    assert world.services.repos.tasks.get(own).claim_id == launched.claim_id


def test_a_job_token_dies_when_its_task_is_advanced(world: World):
    task_id = world.fresh_task()
    token = world.as_(world.job_token(task_id))
    claim_id = world.services.repos.tasks.get(task_id).claim_id
    advanced = token.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": "pass"})
    assert advanced.status_code == 200 and advanced.data["stage"] == "qa", advanced.data
    for response in (token.get(f"/tasks/{task_id}"), token.post(f"/tasks/{task_id}/handoffs", HANDOFF)):
        assert response.status_code == 401 and response.data["error"]["code"] == "job_ended", response.data
    assert world.admin.get(f"/tasks/{task_id}").data["stage"] == "qa"   # the task itself is fine


def test_a_job_token_dies_when_its_lease_expires(world: World, monkeypatch):
    """Time is faked as in tests/support/clock.py (``clock.now_iso``, which the services read): no sleeps."""
    task_id = world.fresh_task()
    token = world.as_(job_token_for(world.services, task_id, expires_in=3600, lease_seconds=60))
    lease = world.services.repos.tasks.get(task_id).lease_expires_at
    assert lease is not None
    real_now = clock.now_iso
    monkeypatch.setattr(clock, "now_iso", lambda: clock.plus_seconds(lease, -1))
    assert token.get(f"/tasks/{task_id}").status_code == 200
    monkeypatch.setattr(clock, "now_iso", lambda: clock.plus_seconds(lease, 1))   # the token itself lives 3600 s
    refused = token.get(f"/tasks/{task_id}")
    assert refused.status_code == 401 and refused.data["error"]["code"] == "job_ended", refused.data
    assert token.post(f"/tasks/{task_id}/handoffs", HANDOFF).status_code == 401
    monkeypatch.setattr(clock, "now_iso", real_now)
    assert token.get(f"/tasks/{task_id}").status_code == 200   # it was the lease, nothing else


def test_a_job_token_dies_when_its_task_is_dispatched_again_or_its_run_killed(world: World):
    task_id = world.fresh_task()
    first = world.as_(world.job_token(task_id))
    assert first.get(f"/tasks/{task_id}").status_code == 200
    second = world.as_(world.job_token(task_id))     # a new job of the same task (same claim, next dispatch)
    refused = first.get(f"/tasks/{task_id}")
    assert refused.status_code == 401 and refused.data["error"]["code"] == "job_ended"
    assert second.get(f"/tasks/{task_id}").status_code == 200
    run = world.fresh_run()
    token = world.as_(world.job_token(run["task_id"]))
    assert token.get(f"/tasks/{run['task_id']}").status_code == 200
    assert world.admin.delete(f"/runs/{run['id']}").status_code == 200
    assert token.get(f"/tasks/{run['task_id']}").status_code == 401


# ---------------------------------------------------------------- launch codes


def test_a_launch_code_is_redeemed_once_for_its_jobs_token(world: World):
    task_id = world.fresh_task()
    job_id, code = world.launch_code(task_id)
    other_job, other_code = world.launch_code(world.fresh_task())
    launch = world.as_(code)
    # another job's id (or no job at all): 404, and the code is not spent by asking
    assert launch.post(f"/jobs/{other_job}/token").status_code == 404
    assert launch.post("/jobs/job_000000000000/token").status_code == 404
    redeemed = launch.post(f"/jobs/{job_id}/token")
    assert redeemed.status_code == 201, redeemed.data
    task = world.services.repos.tasks.get(task_id)
    assert set(redeemed.data) == {"token", "expires_at", "job_id", "task_id", "stage", "claim_id"}
    assert (redeemed.data["job_id"], redeemed.data["task_id"], redeemed.data["stage"], redeemed.data["claim_id"]) \
        == (job_id, task_id, "dev", task.claim_id)
    again = launch.post(f"/jobs/{job_id}/token")
    assert again.status_code == 401 and again.data["error"]["code"] == "launch_code_used", again.data
    assert redeemed.data["token"] not in again.body.decode()
    token = world.as_(redeemed.data["token"])
    assert token.get(f"/tasks/{task_id}").status_code == 200
    assert token.post(f"/tasks/{task_id}/handoffs", HANDOFF).status_code == 201   # under the job's claim
    assert world.as_(other_code).post(f"/jobs/{other_job}/token").status_code == 201


def test_a_launch_code_does_nothing_but_redeem_itself(world: World):
    task_id = world.fresh_task()
    job_id, code = world.launch_code(task_id)
    launch = world.as_(code)
    claim_id = world.services.repos.tasks.get(task_id).claim_id
    calls = (("GET", f"/tasks/{task_id}", None), ("GET", f"/tasks/{task_id}/context", None),
             ("POST", "/queue/claim", {"stage": "dev", "agent_id": "l", "task_id": task_id}),
             ("POST", f"/tasks/{task_id}/heartbeat", {"claim_id": claim_id}),
             ("POST", f"/tasks/{task_id}/handoffs", HANDOFF), ("GET", "/roles", None), ("GET", "/projects", None))
    for method, path, body in calls:
        response = launch.call(method, path, body)
        assert response.status_code == 403 and response.data["error"]["code"] == "forbidden", (path, response.data)
    # keys of every kind are refused the redeem route, even for this real job
    for who in ("admin", "human_a", "agent_a"):
        assert world.as_(world.keys[who]).post(f"/jobs/{job_id}/token").status_code == 403
    made_up = world.as_("bl_" + secrets.token_urlsafe(32)).post(f"/jobs/{job_id}/token")
    assert made_up.status_code == 401 and made_up.data["error"]["code"] == "invalid_credentials"
    redeemed = launch.post(f"/jobs/{job_id}/token")   # the refusals spent nothing
    assert redeemed.status_code == 201
    # the token it bought may not redeem its own job either, and the spent code is no credential at all
    assert world.as_(redeemed.data["token"]).post(f"/jobs/{job_id}/token").status_code == 403
    assert launch.get(f"/tasks/{task_id}").status_code == 401


def test_a_launch_code_of_a_job_that_ended_buys_nothing(world: World):
    task_id = world.fresh_task()
    job_id, code = world.launch_code(task_id)
    claim_id = world.services.repos.tasks.get(task_id).claim_id
    assert world.admin.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": "pass"}).status_code == 200
    refused = world.as_(code).post(f"/jobs/{job_id}/token")
    assert refused.status_code == 401 and refused.data["error"]["code"] == "job_ended", refused.data


# ---------------------------------------------------------------- evidence under a claim


def test_an_agent_writes_evidence_only_under_a_live_claim_of_that_task(world: World, monkeypatch):
    agent = world.as_(world.keys["agent_a"])
    task_id, elsewhere = world.fresh_task(), world.fresh_task()
    claim_id = world.agent_claim(task_id, lease_seconds=60)
    other_claim = world.agent_claim(elsewhere)

    def write(claim: Optional[str]):
        return agent.post(f"/tasks/{task_id}/handoffs", HANDOFF, headers={"Baton-Claim": claim} if claim else None)

    for claim in (None, other_claim, "clm_not_a_claim"):   # none, a live claim of another task, made up
        refused = write(claim)
        assert refused.status_code == 409 and refused.data["error"]["code"] == "claim_not_held", refused.data
    assert write(claim_id).status_code == 201
    lease = world.services.repos.tasks.get(task_id).lease_expires_at
    monkeypatch.setattr(clock, "now_iso", lambda: clock.plus_seconds(lease, 1))
    assert write(claim_id).status_code == 409                  # the lease expired: the claim is not live
    monkeypatch.undo()
    assert world.admin.post(f"/tasks/{task_id}/advance", {"claim_id": claim_id, "result": "pass"}).status_code == 200
    assert write(claim_id).status_code == 409                  # the stage was advanced: its claim ended
    assert world.as_(world.keys["human_a"]).post(f"/tasks/{task_id}/handoffs", HANDOFF).status_code == 201


def test_a_job_token_sees_its_tasks_evidence_only(world: World):
    token = world.as_(world.job_token(world.task_other))
    assert token.get(f"/handoffs/{world.handoff_read}").status_code == 404
    assert token.get(f"/proofs/{world.proof_read}").status_code == 404
    assert token.get(f"/tasks/{world.task_read}/handoffs").status_code == 404
    assert token.post(f"/tasks/{world.task_read}/handoffs", HANDOFF).status_code == 404
    # a bug report naming a proof of another task of the run: the job token may not report bugs at all
    assert token.post(f"/projects/{PROJECT_A}/bugs", {"title": "x", "proof_ids": [world.proof_read]}
                      ).status_code == 403


def test_lists_of_a_scoped_key_show_only_its_projects(world: World):
    for who, mine in (("human_a", PROJECT_A), ("agent_b", PROJECT_B)):
        ids = {p["id"] for p in world.as_(world.keys[who]).get("/projects").data["items"]}
        assert mine in ids and not ({PROJECT_A, PROJECT_B} - {mine}) & ids
    admin_ids = {p["id"] for p in world.admin.get("/projects").data["items"]}
    assert {PROJECT_A, PROJECT_B} <= admin_ids


def test_a_human_cannot_create_a_project_outside_its_key_even_if_it_exists(world: World):
    human_b = world.as_(world.keys["human_b"])
    response = human_b.post("/projects", {"id": PROJECT_A, "name": "x", "repository_url": "https://example.com/x.git"})
    assert response.status_code == 403   # not 409: the answer does not tell that alpha exists


def test_an_agent_of_the_project_cannot_report_a_bug_into_another_projects_run(world: World):
    agent_b = world.as_(world.keys["agent_b"])
    response = agent_b.post(f"/projects/{PROJECT_B}/bugs", {"title": "x", "run_id": world.run_a["id"]})
    assert response.status_code == 422   # a body field naming no run of this project: same answer as a missing run
    assert world.run_a["id"] not in json.dumps(response.data)


def test_the_readme_table_names_every_route():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "authorization.md").read_text()
    missing = [f"{m} {p}" for m, p in app_routes() if f"`{m} {p}`" not in text]
    assert missing == [], f"docs/authorization.md does not place these routes in a group: {missing}"
