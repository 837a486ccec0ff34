"""The commands of ``baton``, registered in one place.

To add one: write a module here with a click command (or group), then list it in ``SECTIONS``,
which is also how ``baton --help`` groups them.
"""

from __future__ import annotations

import click

from . import agents, approvals, demo, events, handoffs, keys, local, projects, proofs, roles, runs, tasks, webhooks

SECTIONS: list[tuple[str, list[click.Command]]] = [
    ("Local stack", [local.up, local.status, demo.demo]),
    ("Projects and runs", [projects.project, runs.run, tasks.task, approvals.approve,
                           approvals.reject]),
    ("Working a task (external agents)", [agents.claim, agents.heartbeat, agents.advance, handoffs.handoff,
                                          proofs.proof, demo.agent]),
    ("Events out", [events.events, webhooks.webhooks]),
    ("Administration", [roles.roles, keys.keys]),
]
