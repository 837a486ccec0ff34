"""The table's keyspace: the one place where DynamoDB key strings are built. See docs/data-model.md.

Every item has ``pk``/``sk``; list views use ``gsi1pk``/``gsi1sk``; the claim queue is the sparse
index ``gsi2pk``/``gsi2sk``, present only while a task is queued (``QUEUE#``) or leased (``LEASE#``);
a queued task is also in its run's queue, the sparse index ``gsi4pk``/``gsi4sk`` (``RUNQUEUE#``).
"""

from __future__ import annotations

META = "META"


def project(project_id: str) -> dict[str, str]:
    return {"pk": f"PROJECT#{project_id}", "sk": META}


def project_list_entry(project_id: str) -> dict[str, str]:
    return {"gsi1pk": "PROJECTS", "gsi1sk": f"PROJECT#{project_id}"}


PROJECTS_PARTITION = "PROJECTS"


def run(run_id: str) -> dict[str, str]:
    return {"pk": f"RUN#{run_id}", "sk": META}


def runs_of_project(project_id: str) -> str:
    return f"PROJECT#{project_id}#RUNS"


def run_list_entry(project_id: str, run_id: str) -> dict[str, str]:
    return {"gsi1pk": runs_of_project(project_id), "gsi1sk": f"RUN#{run_id}"}


def task(task_id: str) -> dict[str, str]:
    return {"pk": f"TASK#{task_id}", "sk": META}


def task_partition(task_id: str) -> str:
    return f"TASK#{task_id}"


def tasks_of_run(run_id: str) -> str:
    return f"RUN#{run_id}#TASKS"


def task_list_entry(run_id: str, task_id: str) -> dict[str, str]:
    return {"gsi1pk": tasks_of_run(run_id), "gsi1sk": f"TASK#{task_id}"}


def queue_partition(project_id: str, stage: str) -> str:
    return f"QUEUE#{project_id}#{stage}"


def run_queue_partition(run_id: str, stage: str) -> str:
    return f"RUNQUEUE#{run_id}#{stage}"


def run_queue_entry(run_id: str, stage: str, priority: int, enqueued_at: str, task_id: str) -> dict[str, str]:
    """The same queue entry, per run (sparse index gsi4): a claim by run reads only its run's tasks."""
    return {"gsi4pk": run_queue_partition(run_id, stage),
            "gsi4sk": f"{10 - priority:02d}#{enqueued_at}#{task_id}"}


def lease_partition(project_id: str, stage: str) -> str:
    return f"LEASE#{project_id}#{stage}"


def queue_entry(project_id: str, stage: str, priority: int, enqueued_at: str, task_id: str) -> dict[str, str]:
    """Higher priority first (inverted), then oldest first."""
    return {"gsi2pk": queue_partition(project_id, stage),
            "gsi2sk": f"{10 - priority:02d}#{enqueued_at}#{task_id}"}


def lease_entry(project_id: str, stage: str, lease_expires_at: str, task_id: str) -> dict[str, str]:
    """Leased tasks sort by expiry, so expired leases are a key-range query."""
    return {"gsi2pk": lease_partition(project_id, stage), "gsi2sk": lease_sort_key(lease_expires_at, task_id)}


def lease_sort_key(lease_expires_at: str, task_id: str) -> str:
    return f"{lease_expires_at}#{task_id}"


def event(run_id: str, seq: int) -> dict[str, str]:
    return {"pk": f"RUN#{run_id}", "sk": event_sk(seq)}


def event_sk(seq: int) -> str:
    return f"EVENT#{seq:012d}"


def api_key(key_hash: str) -> dict[str, str]:
    return {"pk": f"KEY#{key_hash}", "sk": META}


KEYS_PARTITION = "KEYS"


def api_key_list_entry(key_id: str) -> dict[str, str]:
    return {"gsi1pk": KEYS_PARTITION, "gsi1sk": f"KEY#{key_id}"}


def start_entry(run_id: str, priority: int, created_at: str, task_id: str) -> dict[str, str]:
    """Tasks written but not yet started (Step Functions mode), in the order they should start."""
    return {"gsi2pk": start_partition(run_id), "gsi2sk": f"{10 - priority:02d}#{created_at}#{task_id}"}


def start_partition(run_id: str) -> str:
    return f"START#{run_id}"


def job(task_id: str, dispatch_seq: int) -> dict[str, str]:
    return {"pk": f"TASK#{task_id}", "sk": f"JOB#{dispatch_seq:06d}"}


JOB_SK_PREFIX = "JOB#"


def approval(run_id: str, gate: str) -> dict[str, str]:
    return {"pk": f"RUN#{run_id}", "sk": f"APPROVAL#{gate}"}


APPROVAL_SK_PREFIX = "APPROVAL#"


def outbox(record_id: str) -> dict[str, str]:
    return {"pk": f"OUTBOX#{record_id}", "sk": META}


OUTBOX_PARTITION = "OUTBOX"


def outbox_entry(created_at: str, record_id: str) -> dict[str, str]:
    """Pending callbacks, oldest first, for the sweeper (sparse: deleted once delivered)."""
    return {"gsi3pk": OUTBOX_PARTITION, "gsi3sk": f"{created_at}#{record_id}"}


WAITING_PARTITION = "WAITING"


def waiting_entry(deadline: str, task_id: str) -> dict[str, str]:
    """A queued task whose wait has not been reported yet, by the time it is due (sparse, gsi3):
    the sweeper finds the overdue ones with one key-range query."""
    return {"gsi3pk": WAITING_PARTITION, "gsi3sk": f"{deadline}#{task_id}"}


def role_version(role: str, version: int) -> dict[str, str]:
    return {"pk": f"ROLE#{role}", "sk": f"V#{version:06d}"}


def role_active(role: str) -> dict[str, str]:
    return {"pk": f"ROLE#{role}", "sk": "ACTIVE"}


ROLE_VERSION_SK_PREFIX = "V#"


# ---- handoffs and proofs in the task's partition, finding records, the backlog pointer

HANDOFF_SK_PREFIX = "HANDOFF#"
PROOF_SK_PREFIX = "PROOF#"


def handoff(task_id: str, created_at: str, handoff_id: str) -> dict[str, str]:
    """A handoff sorts by creation time inside its task's partition (newest first = descending)."""
    return {"pk": task_partition(task_id), "sk": f"{HANDOFF_SK_PREFIX}{created_at}#{handoff_id}"}


def handoff_ref(handoff_id: str) -> dict[str, str]:
    """Pointer from a handoff id to its item (``task_id`` and ``item_sk``): lookup by id without a scan."""
    return {"pk": f"HANDOFF#{handoff_id}", "sk": META}


def proof(task_id: str, created_at: str, proof_id: str) -> dict[str, str]:
    return {"pk": task_partition(task_id), "sk": f"{PROOF_SK_PREFIX}{created_at}#{proof_id}"}


def proof_ref(proof_id: str) -> dict[str, str]:
    """Pointer from a proof id to its item (``task_id`` and ``item_sk``)."""
    return {"pk": f"PROOF#{proof_id}", "sk": META}


def proofs_of_project(project_id: str) -> str:
    return f"PROJECT#{project_id}#PROOFS"


def proof_list_entry(project_id: str, created_at: str, proof_id: str) -> dict[str, str]:
    """A project's proof history, newest first (gsi1, descending)."""
    return {"gsi1pk": proofs_of_project(project_id), "gsi1sk": f"{created_at}#{proof_id}"}


def finding(run_id: str, dedup_key: str) -> dict[str, str]:
    """One finding reported in a run: its presence means "already reported, a fix task exists"."""
    return {"pk": f"RUN#{run_id}", "sk": f"FINDING#{dedup_key}"}


def task_counts(task_id: str) -> dict[str, str]:
    """How many handoffs and proofs a task has (its per-task caps count these)."""
    return {"pk": task_partition(task_id), "sk": "COUNTS"}


def failed_verdict(task_id: str, stage: str, iteration: int) -> dict[str, str]:
    """Present when a findings report failed this stage and iteration of the task: it cannot pass."""
    return {"pk": task_partition(task_id), "sk": f"VERDICT#{stage}#{iteration:04d}"}


def fix_task_count(run_id: str) -> dict[str, str]:
    """How many fix tasks findings created in a run (the ``max_fix_tasks`` ceiling counts these)."""
    return {"pk": f"RUN#{run_id}", "sk": "FIXCOUNT"}


def backlog(project_id: str) -> dict[str, str]:
    """The project's open backlog run, where bug reports without a run go."""
    return {"pk": f"PROJECT#{project_id}", "sk": "BACKLOG"}


def director_settings() -> dict[str, str]:
    return {"pk": "SETTINGS#director", "sk": META}


def run_usage(run_id: str) -> dict[str, str]:
    """The run's usage roll-up: flat counters ``total|…`` and ``stage|dev|…``, ``model|…`` (ADDed)."""
    return {"pk": f"RUN#{run_id}", "sk": "USAGE"}


HELD_PARTITION_PREFIX = "HELD#"


def held_partition(run_id: str) -> str:
    return f"{HELD_PARTITION_PREFIX}{run_id}"


def held_entry(run_id: str, priority: int, created_at: str, task_id: str) -> dict[str, str]:
    """A task held back until its run's canary gate is approved (sparse, gsi2), in start order."""
    return {"gsi2pk": held_partition(run_id), "gsi2sk": f"{10 - priority:02d}#{created_at}#{task_id}"}


GATES_DUE_PARTITION = "GATESDUE"


def gate_due_entry(decide_by: str, run_id: str, gate: str) -> dict[str, str]:
    """A pending gate with a decision deadline, by deadline (sparse, gsi3): the sweeper applies
    ``on_timeout`` to the overdue ones with one key-range query."""
    return {"gsi3pk": GATES_DUE_PARTITION, "gsi3sk": f"{decide_by}#{run_id}#{gate}"}


def attention(item_id: str) -> dict[str, str]:
    return {"pk": f"ATTENTION#{item_id}", "sk": META}


def attention_of_project(project_id: str, status: str) -> str:
    return f"PROJECT#{project_id}#ATTENTION#{status}"


def attention_entries(project_id: str, status: str, created_at: str, item_id: str) -> dict[str, str]:
    """An attention item in its project's list (gsi1) and in everyone's (gsi3, for admins), by
    status, newest first (read descending)."""
    sort = f"{created_at}#{item_id}"
    return {"gsi1pk": attention_of_project(project_id, status), "gsi1sk": sort,
            "gsi3pk": f"ATTENTION#{status}", "gsi3sk": sort}


STATE_SK_PREFIX = "STATE#"
STATE_VERSION_SK_PREFIX = "STATEV#"


def task_state(task_id: str, name: str) -> dict[str, str]:
    """A task's state value under ``name``: its current version (a tombstone once deleted)."""
    return {"pk": task_partition(task_id), "sk": f"{STATE_SK_PREFIX}{name}"}


def task_state_version(task_id: str, name: str, version: int) -> dict[str, str]:
    """One version of it, kept while the task exists."""
    return {"pk": task_partition(task_id), "sk": f"{STATE_VERSION_SK_PREFIX}{name}#{version:09d}"}


def task_state_upload(task_id: str, name: str) -> dict[str, str]:
    """A large value's upload, between its presigned form and its confirmation."""
    return {"pk": task_partition(task_id), "sk": f"STATEUP#{name}"}


# ---- webhooks: the webhook, its deliveries and its per-run delivery cursors in its own partition

DELIVERY_SK_PREFIX = "DELIVERY#"


def webhook(webhook_id: str) -> dict[str, str]:
    return {"pk": f"WEBHOOK#{webhook_id}", "sk": META}


def webhook_partition(webhook_id: str) -> str:
    return f"WEBHOOK#{webhook_id}"


def webhooks_of_project(project_id: str) -> str:
    return f"PROJECT#{project_id}#WEBHOOKS"


def webhook_list_entry(project_id: str, webhook_id: str) -> dict[str, str]:
    """A project's webhooks (gsi1), oldest first: what every published event is matched against."""
    return {"gsi1pk": webhooks_of_project(project_id), "gsi1sk": f"WEBHOOK#{webhook_id}"}


def webhook_delivery(webhook_id: str, run_id: str, seq: int) -> dict[str, str]:
    """One event of a run for one webhook; newest run first when read descending."""
    return {"pk": webhook_partition(webhook_id), "sk": f"{DELIVERY_SK_PREFIX}{run_id}#{seq:012d}"}


def webhook_stream(webhook_id: str, run_id: str) -> dict[str, str]:
    """How far a webhook's deliveries of a run got (every matching event up to ``through`` is
    delivered or failed), and the attention item its failures opened."""
    return {"pk": webhook_partition(webhook_id), "sk": f"STREAM#{run_id}"}


# ---- the director's own records

def run_watch(run_id: str) -> dict[str, str]:
    """What the director keeps about a run: how far it read its audit log, jobs in flight, durations."""
    return {"pk": f"RUN#{run_id}", "sk": "DIRECTOR"}


def queue_watch(project_id: str, stage: str) -> dict[str, str]:
    """What the director keeps about a claim queue: the last claim attempt, the last idle report."""
    return {"pk": f"PROJECT#{project_id}", "sk": f"QUEUE#{stage}"}


def escalation_window(project_id: str, window: str) -> dict[str, str]:
    """How many escalations the director opened in a project in one clock hour (``window``)."""
    return {"pk": f"PROJECT#{project_id}", "sk": f"ESCALATIONS#{window}"}
