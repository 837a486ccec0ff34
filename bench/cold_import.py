"""Cold import of ``app.py`` against a bare Chalice + boto3 + pydantic + powertools Logger app
(``bench/bare_app.py``), each in a fresh interpreter, several times; medians compared.

    .venv/bin/python bench/cold_import.py [--repeat 9]

Also, each once more in fresh interpreters:
* without a bytecode cache but for the standard library's: what Lambda does with Chalice's zip,
  which ships no ``.pyc`` (the package dir is read-only: every cold start compiles every module
  of the zip it imports);
* with pydantic's ``defer_build`` on for every model (what-if: models are built on first use);
* import + wiring (``bootstrap.build_services``: the boto3 clients), against bare + one client,
  and the same with every client made from one boto3 session (what-if);
and what dominates: ``python -X importtime`` self times of the modules only Baton's app imports,
grouped by package, and the time pydantic spends building model classes during the import.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import shutil
import subprocess  # nosec B404  # fresh interpreters are the point
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import ROOT, median, print_table, record_summary  # noqa: E402

BENCH = Path(__file__).resolve().parent
TARGET = 1.2
TIMED = "import sys, time; sys.path[:0] = {paths!r}; t, c = time.perf_counter(), time.process_time(); " \
        "{setup}import {module}{after}; print(time.perf_counter() - t, time.process_time() - c)"
DEFER_BUILD = "from pydantic._internal import _config; _config.config_defaults['defer_build'] = True; "
# What-if: every client from one botocore session (it loads endpoints and service models once).
ONE_SESSION = "import boto3.session as bs; shared = bs.Session(); bs.Session = lambda *a, **k: shared; "
APPS = {"app.py": ("app", [str(ROOT)]), "bare": ("bare_app", [str(BENCH)])}
WIRING = {"app.py": "; from chalicelib import bootstrap, config; bootstrap.build_services(config.Settings.from_env())",
          "bare": "; bare_app.boto3.session.Session().client('dynamodb', region_name='us-east-1')"}
PYDANTIC_PROBE = """
import sys, time
sys.path[:0] = {paths!r}
from pydantic._internal import _model_construction as mc
state = {{"depth": 0, "seconds": 0.0, "models": 0}}
original = mc.ModelMetaclass.__new__
def timed(mcs, *args, **kwargs):
    if state["depth"]:
        return original(mcs, *args, **kwargs)
    state["depth"] += 1
    began = time.perf_counter()
    try:
        return original(mcs, *args, **kwargs)
    finally:
        state["depth"] -= 1
        state["seconds"] += time.perf_counter() - began
        state["models"] += 1
mc.ModelMetaclass.__new__ = timed
import {module}
print(state["models"], state["seconds"])
"""


_STDLIB_ONLY_CACHE: list[str] = []


def stdlib_only_cache() -> str:
    """A bytecode cache prefix holding the standard library's bytecode only: on Lambda the runtime's
    standard library is compiled, the function's zip (Baton, boto3, pydantic, ...) is not."""
    if not _STDLIB_ONLY_CACHE:
        prefix = tempfile.mkdtemp(prefix="baton-stdlib-pyc-")
        atexit.register(shutil.rmtree, prefix, True)
        env = {**environment(), "PYTHONPYCACHEPREFIX": prefix}
        for module, paths in APPS.values():
            subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = {paths!r}; import {module}"],
                           env=env, cwd=tempfile.gettempdir(), check=True)  # nosec B603
        keep = Path(prefix + os.path.realpath(sys.base_prefix))
        for path in sorted(Path(prefix).rglob("*.pyc")):
            if keep not in path.parents:
                path.unlink()
        _STDLIB_ONLY_CACHE.append(prefix)
    return _STDLIB_ONLY_CACHE[0]


def environment(no_bytecode: bool = False) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_ENDPOINT"))}
    env.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",  # nosec B105  # placeholders
                "AWS_SECRET_ACCESS_KEY": "testing",
                "POWERTOOLS_SERVICE_NAME": "baton", "BATON_ORCHESTRATION": "stepfunctions", "BATON_TABLE": "t",
                "BATON_BUCKET": "b"})
    if no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = stdlib_only_cache()
    return env


def timed_import(name: str, setup: str = "", after: str = "", no_bytecode: bool = False) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one import in a fresh interpreter."""
    module, paths = APPS[name]
    code = TIMED.format(paths=paths, setup=setup, module=module, after=after)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tempfile.gettempdir(),
                         env=environment(no_bytecode))  # nosec B603  # our own interpreter and code
    if out.returncode:
        raise SystemExit(f"import of {name} failed:\n{out.stderr[-2000:]}")
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def series(repeat: int, setup: dict[str, str], after: Optional[dict[str, str]] = None,
           no_bytecode: bool = False) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU times, app and bare alternating so that drift in the machine's load hits both alike."""
    walls: dict[str, list[float]] = {name: [] for name in APPS}
    cpus: dict[str, list[float]] = {name: [] for name in APPS}
    for _ in range(repeat):
        for name in APPS:
            wall, cpu = timed_import(name, setup.get(name, ""), (after or {}).get(name, ""), no_bytecode)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return walls, cpus


def importtime(module: str, paths: list[str]) -> dict[str, int]:
    code = f"import sys; sys.path[:0] = {paths!r}; import {module}"
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         cwd=tempfile.gettempdir(), env=environment(), check=True)  # nosec B603
    selfs: dict[str, int] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            selfs[match.group(3)] = int(match.group(1))
    return selfs


def group(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "chalicelib" else parts[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    for name in APPS:   # compile the bytecode caches once, outside the measurement
        timed_import(name)

    variants = max(3, args.repeat // 3)
    base, base_cpu = series(args.repeat, {})
    cold, cold_cpu = series(variants, {}, no_bytecode=True)
    deferred, deferred_cpu = series(variants, {"app.py": DEFER_BUILD})
    wired, wired_cpu = series(variants, {}, WIRING)
    shared, shared_cpu = series(variants, {"app.py": ONE_SESSION, "bare": ONE_SESSION}, WIRING)

    def cells(walls: dict[str, list[float]], cpus: dict[str, list[float]]) -> list[str]:
        app, bare = median(walls["app.py"]), median(walls["bare"])
        app_cpu, bare_cpu = median(cpus["app.py"]), median(cpus["bare"])
        return [f"{app * 1000:.0f} ms", f"{bare * 1000:.0f} ms", f"{app / bare:.2f}×",
                f"{app_cpu * 1000:.0f} / {bare_cpu * 1000:.0f} ms = {app_cpu / bare_cpu:.2f}×"]

    ratio = median(base["app.py"]) / median(base["bare"])
    print("## Cold import of app.py\n")
    print(f"Fresh interpreter per import, medians of {args.repeat} imports each (the variants: {variants}), app and "
          "bare alternating. Wall clock is the figure; CPU time (the importing process's) is the cross-check "
          "that is less sensitive to a busy machine.\n")
    rows = [["import (bytecode cached)", *cells(base, base_cpu), f"≤ {TARGET}×"],
            ["import, no bytecode cache (as the Lambda zip ships)", *cells(cold, cold_cpu), "–"],
            ["import, pydantic defer_build forced on (what-if)", *cells(deferred, deferred_cpu), f"≤ {TARGET}×"],
            ["import + wiring (build_services / one boto3 client)", *cells(wired, wired_cpu), "–"],
            ["import + wiring, all clients from one boto3 session (what-if)", *cells(shared, shared_cpu), "–"]]
    print_table(["what", "app.py", "bare", "ratio (wall)", "CPU app / bare", "target"], rows)
    print("\napp.py import times (ms, sorted): " + ", ".join(f"{t * 1000:.0f}" for t in sorted(base["app.py"])))
    print("bare app import times (ms, sorted): " + ", ".join(f"{t * 1000:.0f}" for t in sorted(base["bare"])))

    app_self = importtime("app", [str(ROOT)])
    bare_self = importtime("bare_app", [str(BENCH)])
    only_app = {m: t for m, t in app_self.items() if m not in bare_self}
    groups: Counter = Counter()
    for module, micros in only_app.items():
        groups[group(module)] += micros
    print(f"\nWhat only app.py imports: {len(only_app)} modules, {sum(only_app.values()) / 1000:.0f} ms of self "
          "time under -X importtime (which inflates everything a little):\n")
    print_table(["package", "self time"], [[g, f"{t / 1000:.1f} ms"] for g, t in groups.most_common(8)])
    top = sorted(only_app.items(), key=lambda kv: -kv[1])[:8]
    print("\nSlowest modules: " + ", ".join(f"{m} {t / 1000:.1f} ms" for m, t in top))
    probe = subprocess.run([sys.executable, "-c", PYDANTIC_PROBE.format(paths=[str(ROOT)], module="app")],
                           capture_output=True, text=True, cwd=tempfile.gettempdir(), env=environment(),
                           check=True)  # nosec B603
    models, seconds = probe.stdout.split()
    print(f"\npydantic creates {models} model classes while app.py imports, in {float(seconds) * 1000:.0f} ms; "
          f"forcing defer_build on for every model changes the median import by "
          f"{(median(deferred['app.py']) - median(base['app.py'])) * 1000:+.0f} ms (a deferred model is built on "
          "its first use, in the first request that needs it).")
    record_summary("cold_import", [{"figure": "cold import app.py / bare app (median)",
                                    "measured": f"{ratio:.2f}× ({median(base['app.py']) * 1000:.0f} / "
                                                f"{median(base['bare']) * 1000:.0f} ms)",
                                    "minimum": f"≤ {TARGET}×"}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
