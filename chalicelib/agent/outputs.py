"""What a task's stages pass on: the outputs a stage leaves for later tasks, the inputs a task was given.

Out: a command may leave ``outputs.json`` (a JSON object, e.g. ``{"release_commit": "<sha>",
"base_commit": "<sha>"}``) in its proofs folder. The runner sends it as the advance's ``outputs``
(the server merges it into ``task.outputs``); it is never uploaded as a proof. A file that is a
link, not a regular file, larger than :data:`MAX_OUTPUTS_BYTES`, not JSON or not an object is a
warning and no outputs: never the job's failure. When the server refuses the outputs anyway (too
large once merged with earlier stages' outputs), the runner advances again without them, so the
job's verdict is not lost (:func:`refuses_outputs`).

In: the agent learns where its task came from and what it was handed: ``BATON_TASK_SOURCE``
(manual, finding, bug_report, release, rollback), ``BATON_INPUTS`` (``task.inputs`` as JSON, ``{}``
when there are none; a rollback's are its release task's outputs plus ``release_task_id``) and the
same JSON in ``inputs.json`` next to the prompt file (``BATON_INPUTS_FILE``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from .client import ApiError
from .usage import UsageError, read_tail

OUTPUTS_FILE = "outputs.json"
INPUTS_FILE = "inputs.json"
MAX_OUTPUTS_BYTES = 16 * 1024   # the server's limit, on the compact JSON of the outputs


def compact(value: Any) -> str:
    """JSON as the server measures it."""
    return json.dumps(value, separators=(",", ":"))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_outputs(proofs_dir: Path) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """(outputs, None) from the command's ``outputs.json``; (None, None) when it left none or an
    empty object; (None, why) when the file is unusable (the warning)."""
    path = proofs_dir / OUTPUTS_FILE
    if not os.path.lexists(path):
        return None, None
    try:
        if path.is_symlink():
            raise UsageError("it is a symbolic link")
        raw = read_tail(path, MAX_OUTPUTS_BYTES + 1)   # no link followed, no FIFO waited on
        if len(raw) > MAX_OUTPUTS_BYTES:
            raise UsageError(f"it is larger than {MAX_OUTPUTS_BYTES // 1024} KB")
        try:
            document = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except (ValueError, RecursionError):   # UnicodeDecodeError is a ValueError
            raise UsageError("it is not valid JSON") from None
        if not isinstance(document, dict):
            raise UsageError(f"it holds a JSON {type(document).__name__}, not an object")
        if len(compact(document)) > MAX_OUTPUTS_BYTES:
            raise UsageError(f"its compact JSON is larger than {MAX_OUTPUTS_BYTES // 1024} KB")
    except (OSError, UsageError) as error:
        return None, f"{OUTPUTS_FILE} ignored: {error}"
    return (document or None), None


def refuses_outputs(error: ApiError) -> bool:
    """Whether the advance was refused for its outputs (``outputs_too_large`` once merged with the
    task's earlier outputs, or a body whose ``outputs`` did not validate), not for its verdict."""
    if error.status not in (400, 422):
        return False
    if error.code == "outputs_too_large":
        return True
    return any(isinstance(detail, dict) and "outputs" in [str(part) for part in (detail.get("loc") or [])[:2]]
               for detail in error.details)


def task_inputs(task: dict[str, Any]) -> dict[str, Any]:
    inputs = task.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def input_descriptors(task: dict[str, Any], work: Path) -> dict[str, str]:
    """Write ``inputs.json`` in the job's work dir; the agent's descriptors that name the task's
    source and inputs."""
    inputs = json.dumps(task_inputs(task), separators=(",", ":"), sort_keys=True)
    inputs_file = work / INPUTS_FILE
    inputs_file.write_text(inputs)
    return {"BATON_TASK_SOURCE": str(task.get("source") or ""), "BATON_INPUTS": inputs,
            "BATON_INPUTS_FILE": str(inputs_file)}
