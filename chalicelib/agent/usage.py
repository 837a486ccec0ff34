"""What a job used (tokens, cost, model, wall time), found by the runner without the agent's help
and reported once per job, after the agent's command ended and before the advance that ends the job
and its token: ``POST /tasks/{task_id}/usage``, under the job's claim like every other task write.

Where the figures come from, the first usable source winning whole (sources are never mixed):

1. ``usage.json`` that the command left in its proofs folder: ``model``, ``tokens_in``,
   ``tokens_out``, ``tokens_cached``, ``cost_usd`` (the body's own keys; unknown keys are ignored,
   at least one count or the cost must be there, missing ones are 0). A file with a value of the
   wrong type, negative or absurd is a warning and is ignored whole: nothing is clamped. It is not
   uploaded as a proof.
2. The agent's output (stdout and stderr, of which only the last :data:`OUTPUT_TAIL_BYTES` are
   read): the last summary of a known agent CLI in it:

   * Claude Code's ``-p --output-format json`` result (``{"type": "result", ...}``), the same object
     as the last line of ``--output-format stream-json``, or as the last element of the array that
     ``json`` prints with ``--verbose``. Tokens are the per-model ``modelUsage`` totals summed over
     the models (the main model and the small one Claude Code uses beside it), else the result's
     ``usage``; the cost is ``total_cost_usd``; the model is the one ``modelUsage`` names, or the
     one that cost the most.
   * goose's ``goose run --output-format json`` (``metadata``) or ``stream-json`` (the last
     ``{"type": "complete", ...}`` event), when they carry ``input_tokens`` and ``output_tokens``
     (goose versions with cumulative session totals). goose names no model; a goose that reports
     only ``total_tokens`` (the last turn's context size, not the session's use) is not used.
3. Nothing: tokens 0, cost 0, model null.

``wall_seconds`` is always the runner's own measurement of the command's wall time.

What the counts mean (the server's budget counts ``tokens_in + tokens_out``): ``tokens_in`` is the
input that was not read from a prompt cache (fresh input and cache writes), ``tokens_cached`` the
input read from a cache, ``tokens_out`` the output. Claude Code reports the three kinds apart;
goose's ``input_tokens`` includes the cache reads, which are taken out of it.

Nothing here may fail the job: a source that cannot be read or makes no sense is a warning, and a
usage call that fails (the server may not have the endpoint yet) is a logged warning.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Optional

USAGE_FILE = "usage.json"
OUTPUT_TAIL_BYTES = 256 * 1024      # the agent's output is read from its end, at most this much
USAGE_FILE_MAX_BYTES = 64 * 1024
MAX_TOKENS = 10 ** 10               # per job and kind: more is a broken report, not a job
MAX_COST_USD = 10_000.0             # per job
MAX_CANDIDATES = 200                # JSON values tried in the output tail, newest first
MODEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,99}")   # what the API accepts as a model name
COUNTS = ("tokens_in", "tokens_out", "tokens_cached")
RESULT_ANCHOR = re.compile(r'\{\s*"type"\s*:\s*"(?:result|complete)"')   # Claude's result, goose's complete
METADATA_ANCHOR = re.compile(r'"metadata"\s*:\s*\{')                      # goose's json metadata
VALUE_START = re.compile(r"^[ \t]*[\[{]", re.MULTILINE)                   # any JSON value opening a line
GOOSE_KEYS = ("total_tokens", "input_tokens", "output_tokens")


class UsageError(ValueError):
    """A usage source that is there but cannot be used (why, for the warning)."""


def count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} is {type(value).__name__} {str(value)[:40]!r}, not an integer")
    if not 0 <= value <= MAX_TOKENS:
        raise UsageError(f"{name} is {value}, outside 0..{MAX_TOKENS}")
    return value


def counted(mapping: dict[str, Any], key: str, where: str = "") -> int:
    """``mapping[key]`` as a count; absent or null is 0."""
    return 0 if mapping.get(key) is None else count(mapping[key], where + key)


def dollars(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"{name} is {type(value).__name__} {str(value)[:40]!r}, not a number")
    if not (math.isfinite(value) and 0 <= value <= MAX_COST_USD):
        raise UsageError(f"{name} is {value}, outside 0..{MAX_COST_USD:g}")
    return float(value)


def model_name(value: Any, name: str = "model") -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not MODEL_RE.fullmatch(value):
        raise UsageError(f"{name} {str(value)[:60]!r} is not a model name (letters, digits and ._:/@+-, "
                         "at most 100)")
    return value


def nothing_known() -> dict[str, Any]:
    return {"model": None, "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0, "cost_usd": 0.0}


# ---------------------------------------------------------------- reading what the agent left

def read_tail(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of a regular file, never following a link the agent put there and
    never blocking on a FIFO. Raises OSError (or UsageError: not a regular file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            os.lseek(fd, info.st_size - limit, os.SEEK_SET)
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def usage_from_file(document: Any) -> dict[str, Any]:
    """The body from a ``usage.json`` document; raises UsageError saying what is wrong with it."""
    if not isinstance(document, dict):
        raise UsageError(f"it holds a JSON {type(document).__name__}, not an object")
    if not any(key in document for key in (*COUNTS, "cost_usd")):
        raise UsageError("it has none of tokens_in, tokens_out, tokens_cached, cost_usd")
    usage = nothing_known()
    usage["model"] = model_name(document.get("model"))
    for key in COUNTS:
        if key in document:
            usage[key] = count(document[key], key)
    if "cost_usd" in document:
        usage["cost_usd"] = dollars(document["cost_usd"], "cost_usd")
    if "wall_seconds" in document:   # checked like the rest; the runner's own measurement is sent
        dollars(document["wall_seconds"], "wall_seconds")
    return usage


def read_usage_file(path: Path) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """(usage, None) from the agent's ``usage.json``; (None, None) when there is none; (None, why)
    when it is unusable."""
    if not os.path.lexists(path):
        return None, None
    try:
        if path.is_symlink():
            raise UsageError("it is a symbolic link")
        raw = read_tail(path, USAGE_FILE_MAX_BYTES + 1)
        if len(raw) > USAGE_FILE_MAX_BYTES:
            raise UsageError(f"it is larger than {USAGE_FILE_MAX_BYTES // 1024} KB")
        try:
            document = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError) as error:
            raise UsageError(f"it is not valid JSON ({type(error).__name__})") from None
        return usage_from_file(document), None
    except (OSError, UsageError) as error:
        return None, f"{USAGE_FILE} ignored: {error}"


# ---------------------------------------------------------------- agent CLIs' own summaries

def from_claude(result: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Claude Code's result object: ``total_cost_usd``, ``usage`` and per-model ``modelUsage``."""
    per_model = result.get("modelUsage")
    per_model = per_model if isinstance(per_model, dict) else {}
    usage = nothing_known()
    usage["cost_usd"] = dollars(result.get("total_cost_usd", 0), "total_cost_usd")
    entries = list(per_model.values())
    if entries and all(isinstance(e, dict) and "inputTokens" in e and "outputTokens" in e for e in entries):
        for entry in entries:   # cumulative per model: the main model and the small one beside it
            usage["tokens_in"] += counted(entry, "inputTokens") + counted(entry, "cacheCreationInputTokens")
            usage["tokens_out"] += counted(entry, "outputTokens")
            usage["tokens_cached"] += counted(entry, "cacheReadInputTokens")
    else:
        totals = result.get("usage")
        if not isinstance(totals, dict) or "input_tokens" not in totals or "output_tokens" not in totals:
            raise UsageError("the result has no token counts (usage.input_tokens and output_tokens)")
        usage["tokens_in"] = counted(totals, "input_tokens") + counted(totals, "cache_creation_input_tokens")
        usage["tokens_out"] = counted(totals, "output_tokens")
        usage["tokens_cached"] = counted(totals, "cache_read_input_tokens")
    for key in COUNTS:
        count(usage[key], f"the sum of {key}")
    if per_model:
        costs = {name: dollars(entry.get("costUSD", 0), f"modelUsage {name[:40]} costUSD")
                 if isinstance(entry, dict) else 0.0 for name, entry in per_model.items()}
        main = max(costs, key=lambda name: costs[name])   # the first of the costliest: dicts keep their order
        try:
            usage["model"] = model_name(main, "modelUsage model")
        except UsageError as error:
            warnings.append(f"{error}: the model is reported as unknown")
    return usage


def from_goose(totals: dict[str, Any]) -> dict[str, Any]:
    """goose's totals (``metadata`` of ``--output-format json``, the ``complete`` event of
    ``stream-json``)."""
    if totals.get("input_tokens") is None or totals.get("output_tokens") is None:
        raise UsageError("goose reported no input_tokens/output_tokens (a goose whose total_tokens is the last "
                         "turn's context, not the session's use)")
    tokens_in = counted(totals, "input_tokens", "goose ")
    cached = counted(totals, "cache_read_input_tokens", "goose ")
    if cached > tokens_in:
        raise UsageError(f"goose cache_read_input_tokens {cached} exceeds its input_tokens {tokens_in}")
    tokens_out = counted(totals, "output_tokens", "goose ")
    cost = 0.0 if totals.get("cost_usd") is None else dollars(totals["cost_usd"], "goose cost_usd")
    return {"model": None, "tokens_in": tokens_in - cached, "tokens_out": tokens_out, "tokens_cached": cached,
            "cost_usd": cost}


def recognize(value: Any) -> Optional[tuple[str, Callable[[list[str]], dict[str, Any]]]]:
    """(whose summary, how to read it) when ``value`` is an agent CLI's usage summary, else None."""
    if isinstance(value, list):   # Claude Code's ``--output-format json --verbose``: the result is last
        results = [item for item in value if isinstance(item, dict) and item.get("type") == "result"]
        return recognize(results[-1]) if results else None
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "result" and any(key in value for key in ("usage", "modelUsage", "total_cost_usd")):
        return "Claude Code's result", lambda warnings: from_claude(value, warnings)
    if kind == "complete" and any(key in value for key in GOOSE_KEYS):
        return "goose's complete event", lambda warnings: from_goose(value)
    if isinstance(value.get("metadata"), dict) and isinstance(value.get("messages"), list):
        return recognize(value["metadata"])
    if isinstance(value.get("status"), str) and "total_tokens" in value:
        return "goose's metadata", lambda warnings: from_goose(value)
    return None


def usage_from_output(text: str) -> tuple[Optional[dict[str, Any]], Optional[str], list[str]]:
    """(usage, whose summary, warnings) from the newest agent CLI summary in ``text``. Anchored
    starts (a result/complete event, goose's metadata) are tried first, then every line opening a
    JSON value, newest first, at most :data:`MAX_CANDIDATES` of them."""
    anchored = ({m.start() for m in RESULT_ANCHOR.finditer(text)} |
                {m.end() - 1 for m in METADATA_ANCHOR.finditer(text)})
    lines = {m.end() - 1 for m in VALUE_START.finditer(text)} - anchored
    decoder = json.JSONDecoder()
    for position in (sorted(anchored, reverse=True) + sorted(lines, reverse=True))[:MAX_CANDIDATES]:
        try:
            value, _ = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            continue
        found = recognize(value)
        if found is None:
            continue
        source, read = found
        warnings: list[str] = []
        try:
            return read(warnings), source, warnings
        except UsageError as error:
            return None, None, [f"{source} in the agent's output ignored: {error}"]
    return None, None, []


# ---------------------------------------------------------------- the report

def collect_usage(proofs_dir: Path, output_path: Path, wall_seconds: float) -> tuple[dict[str, Any], str, list[str]]:
    """(the usage call's body, where it came from, warnings)."""
    wall = round(max(0.0, wall_seconds), 3)
    usage, problem = read_usage_file(proofs_dir / USAGE_FILE)
    warnings = [problem] if problem else []
    if usage is not None:
        return {**usage, "wall_seconds": wall}, USAGE_FILE, warnings
    try:
        tail = read_tail(output_path, OUTPUT_TAIL_BYTES).decode("utf-8", errors="replace")
    except FileNotFoundError:
        tail = ""
    except (OSError, UsageError) as error:
        warnings.append(f"the agent's output could not be read for usage: {error}")
        tail = ""
    usage, source, found = usage_from_output(tail)
    warnings += found
    if usage is not None and source is not None:
        return {**usage, "wall_seconds": wall}, source, warnings
    return {**nothing_known(), "wall_seconds": wall}, "nothing (wall time only)", warnings


def report_usage(client: Any, task_id: str, proofs_dir: Path, output_path: Path, wall_seconds: float,
                 log: Callable[[str], None]) -> Optional[dict[str, Any]]:
    """Collect the job's usage and post it; the body sent, or None when the call failed. Never
    raises: a usage report that goes wrong is a warning, never the job's failure."""
    try:
        body, source, warnings = collect_usage(proofs_dir, output_path, wall_seconds)
    except Exception as error:  # a bug in reading usage must not fail the job: report the wall time
        body = {**nothing_known(), "wall_seconds": round(max(0.0, wall_seconds), 3)}
        source = "nothing (wall time only)"
        warnings = [f"usage could not be collected: {type(error).__name__}: {error}"]
    for warning in warnings:
        log(f"warning: {warning}")
    try:
        client.post(f"/tasks/{task_id}/usage", body)
    except Exception as error:  # 404 until the server has it, unreachable, refused: the job goes on
        log(f"warning: usage not reported ({type(error).__name__}: {error}); the job goes on")
        return None
    log(f"reported usage from {source}: {body['tokens_in']} in, {body['tokens_out']} out, {body['tokens_cached']} "
        f"cached, ${body['cost_usd']:.4f}, model {body['model'] or 'unknown'}, {body['wall_seconds']:.1f}s")
    return body
