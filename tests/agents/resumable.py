"""A scripted agent that keeps a session (tests/e2e/test_resumable_sessions.py).

``resumable.py MODE SESSION_ID``: MODE is ``fresh`` (the role's command) or ``resume`` (its
resume_command). Each job appends one line to ``~/.baton-e2e-session/log.txt`` (its stage,
iteration, attempt, mode, session id and working directory) and says what that file held when it
started, in its handoff (summary and notes_for_next) and as a proof (``session-seen.txt``).

A task whose title says ``stop-once``: on its first attempt the agent, once its line is written,
stops its runner with SIGTERM (as ECS stops a container) and waits to be stopped with it.
"""

import json
import os
import signal
import sys
import time

mode, session_arg = sys.argv[1], sys.argv[2]
folder = os.path.join(os.environ["HOME"], ".baton-e2e-session")
os.makedirs(folder, exist_ok=True)
log = os.path.join(folder, "log.txt")
seen = ""
if os.path.exists(log):
    with open(log) as held:
        seen = held.read()
line = (f"{os.environ.get('BATON_STAGE')} iteration={os.environ.get('BATON_ITERATION')} "
        f"attempt={os.environ.get('BATON_ATTEMPT')} mode={mode} session={session_arg} "
        f"env={os.environ.get('BATON_SESSION_ID')} cwd={os.getcwd()}\n")
with open(log, "a") as kept:
    kept.write(line)
if "stop-once" in os.environ.get("BATON_TASK_TITLE", "") and os.environ.get("BATON_ATTEMPT") == "1":
    leader = os.getsid(0)   # the runner starts the command in a session of its own: its parent is the runner
    with open(f"/proc/{leader}/stat") as stat:
        runner = int(stat.read().rsplit(")", 1)[1].split()[1]) if leader != os.getpid() else os.getppid()
    os.kill(runner, signal.SIGTERM)
    time.sleep(60)
    sys.exit(9)
proofs = os.environ["BATON_PROOFS_DIR"]
with open(os.path.join(proofs, "session-seen.txt"), "w") as proof:
    proof.write(seen or "(the session was empty)\n")
lines = len(seen.splitlines())
with open(os.path.join(proofs, "handoff.json"), "w") as handoff:
    json.dump({"summary": f"{mode}: the session held {lines} line(s)", "notes_for_next": seen,
               "confidence": "high"}, handoff)
print(f"resumable agent: {line.strip()}")
