"""Demo release agent.

A release merges the run's task branches into the primary branch and pushes it; its
``outputs.json`` records ``base_commit`` (the primary branch before the merges) and
``release_commit`` (the head it pushed), which a rollback task is later handed as its inputs.

A rollback (``BATON_TASK_SOURCE=rollback``) puts the primary branch back to the release's base:
when the primary branch is still at ``release_commit``, one new commit on top of it whose tree is
``base_commit``'s, pushed; its ``outputs.json`` records ``rollback_commit``,
``reverted_release_commit`` and ``restored_base_commit``. When the primary branch moved past the
release it refuses (exit 1): undoing the release then means keeping what landed after it, which a
person must do by hand. A rollback that finds its own commit already pushed (the job ran again)
reports it instead of rolling back twice.
"""

import os
import re
import sys

from _common import DESCRIPTION, PROOFS, SOURCE, handoff, inputs, outputs, run

RUN_ID = os.environ.get("BATON_RUN_ID", "")
PRIMARY = os.environ.get("BATON_PRIMARY_BRANCH", "main")
COMMIT_ID = re.compile(r"[0-9a-f]{7,64}")
log = []


def git(*args):
    done = run("git", *args)
    log.append(f"$ git {' '.join(args)}\n{done.stdout}{done.stderr}".rstrip("\n"))
    return done


def commit_of(ref):
    """The full commit id ``ref`` names, or "" when it names none."""
    return run("git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout.strip()


def tree_of(commit):
    return run("git", "rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}").stdout.strip()


def finish(code, proof):
    (PROOFS / proof).write_text("\n".join(log) + "\n")
    print("\n".join(log))
    sys.exit(code)


def release():
    branches = [b.strip() for b in run("git", "branch", "-r", "--list", f"origin/baton/{RUN_ID}/*").stdout.splitlines()]
    base = commit_of(f"origin/{PRIMARY}")
    git("checkout", "-B", PRIMARY, f"origin/{PRIMARY}")
    for branch in branches:
        if git("merge", "--no-edit", "-m", f"Merge {branch}", branch).returncode:
            finish(1, "release.log")
    pushed = git("push", "origin", PRIMARY)
    if pushed.returncode == 0:
        released = commit_of("HEAD")
        log.append(f"released {PRIMARY} at {released} (base {base or 'none'})")
        outputs(**{k: v for k, v in {"base_commit": base, "release_commit": released}.items() if v})
    summary = "and pushed" if pushed.returncode == 0 else "but the push failed"
    handoff("cicd", "director", f"Merged {len(branches)} task branch(es) into {PRIMARY} {summary}.",
            work_done=[(PRIMARY, "release merge")])
    finish(pushed.returncode, "release.log")


def rollback_reason():
    """The reason the server wrote in the task's description (``..., asked by <who>: <reason>``)."""
    found = re.search(r"asked by .*?: (.+)", DESCRIPTION, re.DOTALL)
    return (found.group(1) if found else DESCRIPTION).strip() or "no reason given"


def refuse(summary, why):
    log.append(f"rollback refused: {why}")
    handoff("cicd", "director", summary, notes=why, confidence="high",
            questions=[f"Who reverts the release on {PRIMARY} by hand?"])
    finish(1, "rollback.log")


def rollback():
    given = inputs()
    named = {key: given.get(key) for key in ("release_commit", "base_commit")}
    if not all(isinstance(v, str) and COMMIT_ID.fullmatch(v) for v in named.values()):
        refuse("Cannot roll back: the task names no release to undo.",
               f"the task's inputs need release_commit and base_commit as commit ids, they have {named}")
    if git("fetch", "--quiet", "origin").returncode:
        refuse("Cannot roll back: fetching the repository failed.", "git fetch origin failed")
    released, base = commit_of(named["release_commit"]), commit_of(named["base_commit"])
    current = commit_of(f"origin/{PRIMARY}")
    if not released or not base:
        refuse("Cannot roll back: the release's commits are not in the repository.",
               f"release {named['release_commit']} or base {named['base_commit']} is not a commit of origin")
    if current == released:
        git("checkout", "-B", PRIMARY, f"origin/{PRIMARY}")
        git("read-tree", "-u", "--reset", base)
        committed = git("commit", "--quiet", "--allow-empty", "-m",
                        f"Rollback of release {released} (run {RUN_ID}): {rollback_reason()}")
        if committed.returncode:
            refuse("Cannot roll back: the rollback commit failed.", "git commit failed")
        if git("push", "origin", PRIMARY).returncode:
            refuse(f"Cannot roll back: pushing {PRIMARY} failed (did it move meanwhile?).",
                   f"git push origin {PRIMARY} failed; nothing was changed on origin")
        done = commit_of("HEAD")
        log.append(f"rolled back {PRIMARY}: {done} restores the tree of {base} on top of release {released}")
    elif current and commit_of(f"{current}^") == released and tree_of(current) == tree_of(base):
        done = current   # this rollback's own commit, pushed by an earlier attempt of the job
        log.append(f"{PRIMARY} is already rolled back by {current} (the tree of {base} on top of release {released})")
    else:
        after = run("git", "rev-list", "--count", f"{released}..{current}").stdout.strip() if current else ""
        contained = current and run("git", "merge-base", "--is-ancestor", released, current).returncode == 0
        where = (f"{after} commit(s) landed on {PRIMARY} after the release" if contained
                 else f"{PRIMARY} no longer contains the release (its history was rewritten)")
        refuse(f"Refused to roll back: {PRIMARY} moved past release {released[:12]}; a person must revert it by hand.",
               f"origin/{PRIMARY} is at {current or 'nothing'}, not at release {released}: {where}. Resetting it to "
               f"base {base} would undo them too; a person must revert the release's merges ({base[:12]}.."
               f"{released[:12]}) by hand and keep the rest.")
    outputs(rollback_commit=done, reverted_release_commit=released, restored_base_commit=base)
    handoff("cicd", "director", f"Rolled back release {released[:12]} on {PRIMARY}: {done[:12]} restores the tree "
            f"of {base[:12]}.", work_done=[(PRIMARY, f"rollback commit {done}")],
            decisions=[("a new commit restoring the base's tree",
                        ["a force-push of the base", "git revert of each merge"],
                        "history stays append-only and one commit undoes the whole release")])
    finish(0, "rollback.log")


if SOURCE == "rollback":
    rollback()
release()
