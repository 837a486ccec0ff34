"""``make bench``: every bench in its own interpreter, then their headline figures side by side
with the design minimum.

    .venv/bin/python bench/run_all.py [name ...]     # names: roundtrips cold_import queue_depth stage_hop cost rollback

A benchmark measures and prints; it does not assert. The exit status is 2 when a bench saw a
DynamoDB Scan (the store promises GetItem/Query only), 1 when one could not run, else 0.
The scale run is ``make bench-scale`` (bench/scale.py): it takes minutes.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # runs the bench scripts
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.harness import print_table  # noqa: E402

BENCHES = ["roundtrips", "cold_import", "queue_depth", "stage_hop", "cost", "rollback"]


def main() -> int:
    names = sys.argv[1:] or BENCHES
    status = 0
    with tempfile.NamedTemporaryFile(mode="r", suffix=".jsonl") as summary:
        for name in names:
            began = time.monotonic()
            print(f"\n{'=' * 8} bench/{name}.py {'=' * 40}\n", flush=True)
            code = subprocess.run([sys.executable, str(HERE / f"{name}.py")],  # nosec B603  # our own scripts
                                  env={**os.environ, "BENCH_SUMMARY": summary.name}).returncode
            print(f"\n(bench/{name}.py: exit {code}, {time.monotonic() - began:.0f} s)", flush=True)
            if code == 2:
                status = 2
            elif code and status == 0:
                status = 1
        rows = [json.loads(line) for line in Path(summary.name).read_text().splitlines() if line.strip()]
    print(f"\n{'=' * 8} figures next to their design minimum {'=' * 24}\n")
    print_table(["bench", "figure", "measured", "design minimum / target"],
                [[r["bench"], r["figure"], r["measured"], r["minimum"]] for r in rows])
    if status == 2:
        print("\nA bench saw a DynamoDB Scan: see its output above.")
    return status


if __name__ == "__main__":
    sys.exit(main())
