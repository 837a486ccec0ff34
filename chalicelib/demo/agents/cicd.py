"""Demo release agent: merges the run's task branches into the primary branch and pushes it."""

import os
import sys

from _common import PROOFS, handoff, run

run_id = os.environ.get("BATON_RUN_ID", "")
branches = [b.strip() for b in run("git", "branch", "-r", "--list", f"origin/baton/{run_id}/*").stdout.splitlines()]
primary = os.environ.get("BATON_PRIMARY_BRANCH", "main")
run("git", "checkout", "-B", primary, f"origin/{primary}")
log = []
for branch in branches:
    merged = run("git", "merge", "--no-edit", "-m", f"Merge {branch}", branch)
    log.append(f"$ git merge {branch}\n{merged.stdout}{merged.stderr}")
    if merged.returncode:
        (PROOFS / "release.log").write_text("\n".join(log))
        sys.exit(1)
pushed = run("git", "push", "origin", primary)
log.append(f"$ git push origin {primary}\n{pushed.stdout}{pushed.stderr}")
(PROOFS / "release.log").write_text("\n".join(log))
print("\n".join(log))
handoff("cicd", "director", f"Merged {len(branches)} task branch(es) into {primary} and pushed.",
        work_done=[(primary, "release merge")])
sys.exit(pushed.returncode)
