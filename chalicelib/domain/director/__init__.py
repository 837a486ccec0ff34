"""The director: a deterministic supervisor of every pipeline, as pure functions.

* ``vocabulary``: its rules, kinds of action and notes; ``model``: what it remembers of a task
  (``Supervision``, stored on the task as a plain object);
* ``actions``: a proposed action; ``watches``: what it keeps of runs and claim queues;
* ``fingerprints``: what makes two failures the same (normalised failing tests, findings, error line);
* ``facts``: facts recorded where they arise, and what an action leaves behind;
* ``rules``: one detector per rule, from facts, thresholds and the time to proposed actions, and
  the policy (rate limits) applied to them.

The services run it (``services.director``) and take its actions (``services.director_actions``).

Importers name the module (a task's model loads ``model`` only): this package imports nothing.
"""

__all__: list[str] = []
