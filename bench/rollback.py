"""How long a rollback takes on the local stack: ``baton demo`` releases its three features, a
person asks for a rollback, the cicd agent restores the base commit's tree on ``main``, and the run
ends ``rolled_back``. Printed: the time from the request to ``rolled_back`` (the target is under
60 s), and whether ``main``'s tree is the base commit's afterwards.

    .venv/bin/python bench/rollback.py
"""

from __future__ import annotations

import subprocess  # nosec B404  # git, to compare trees
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cost import watcher  # noqa: E402
from bench.harness import local_stack, print_table, record_summary  # noqa: E402

TARGET_SECONDS = 60


def tree(bare: Path, commit: str) -> str:
    return subprocess.run(["git", "rev-parse", f"{commit}^{{tree}}"], cwd=bare, capture_output=True, text=True,
                          check=True).stdout.strip()  # nosec B603 B607


def main() -> int:
    from chalicelib.agent.client import BatonClient
    from chalicelib.demo.run import PROJECT_ID, run_demo

    with local_stack(sweep_seconds=5) as stack:
        client = BatonClient(stack.api_url, stack.admin_key)
        result = run_demo(client, Path(stack.workdir), lambda line: None, watcher(client))
        run_id = result["run"]["id"]
        if result["run"]["status"] != "succeeded":
            print(f"the demo run ended {result['run']['status']}: nothing to roll back", file=sys.stderr)
            return 1
        release = next(t for t in client.get(f"/runs/{run_id}/tasks?limit=50")["items"] if t["source"] == "release")
        person = client.post("/keys", {"name": "bench rollback", "principal": "human", "project_ids": [PROJECT_ID]})
        human = BatonClient(stack.api_url, person["key"])
        began = time.monotonic()
        task = human.post(f"/runs/{run_id}/rollback", {"reason": "bench: the release broke search"})
        while True:
            status = client.get(f"/runs/{run_id}")["status"]
            if status in ("rolled_back", "failed") or time.monotonic() - began > 180:
                break
            time.sleep(0.1)
        seconds = time.monotonic() - began
        done = client.get(f"/tasks/{task['id']}")
        bare = next(Path(stack.workdir).glob("demo/*/textkit.git"))
        restored = tree(bare, "main") == tree(bare, release["outputs"]["base_commit"])

    print("## Rollback on the local stack\n")
    print(f"`baton demo` released {release['outputs']['release_commit'][:12]} on top of "
          f"{release['outputs']['base_commit'][:12]}; a human key asked `POST /runs/{{id}}/rollback`.\n")
    print_table(["figure", "measured", "target"],
                [["rollback request → run `rolled_back`", f"{seconds:.1f} s ({status})", f"< {TARGET_SECONDS} s"],
                 ["main's tree is the base commit's afterwards", "yes" if restored else "NO", "yes"],
                 ["rollback commit on main", str(done.get("outputs", {}).get("rollback_commit", "–"))[:12], "–"]])
    record_summary("rollback", [{"figure": "rollback on the local stack (request → rolled_back)",
                                 "measured": f"{seconds:.1f} s", "minimum": f"< {TARGET_SECONDS} s"}])
    return 0 if status == "rolled_back" and restored else 1


if __name__ == "__main__":
    sys.exit(main())
