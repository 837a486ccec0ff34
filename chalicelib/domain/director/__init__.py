"""The director: a deterministic supervisor of every pipeline, as pure functions.

* ``model``: its rules and actions, what it remembers of a task (``Supervision``), a run, a queue;
* ``fingerprints``: what makes two failures the same (normalised failing tests, findings, error line);
* ``facts``: facts recorded where they arise, and what an action leaves behind;
* ``rules``: one detector per rule, from facts, thresholds and the time to proposed actions, and
  the policy (rate limits) applied to them.

The services run it (``services.director``) and take its actions (``services.director_actions``).
"""

from .model import ActionKind, DirectorAction, DirectorNote, Reassignment, Rule, RunWatch, Supervision

__all__ = ["ActionKind", "DirectorAction", "DirectorNote", "Reassignment", "Rule", "RunWatch", "Supervision"]
