"""A scripted agent for end-to-end tests: what it does depends on words in the task title.

* ``flaky-qa``     fails QA on the task's first iteration, passes afterwards
* ``crash-once``   kills its runner on the first attempt of the first stage (no more heartbeats)
* ``crash-always`` kills its runner on every attempt
* ``slow``         works for a long time (for kill tests), heartbeating via its runner
* anything else    passes every stage
"""

import os
import signal
import sys
import time

title = os.environ.get("BATON_TASK_TITLE", "")
stage = os.environ.get("BATON_STAGE", "")
iteration = int(os.environ.get("BATON_ITERATION", "1"))
attempt = int(os.environ.get("BATON_ATTEMPT", "1"))


def runner_pid() -> int:
    """The runner starts the command in a session of its own: the runner is the session leader's
    parent (the runner no longer tells the agent its pid)."""
    leader = os.getsid(0)
    if leader == os.getpid():
        return os.getppid()
    with open(f"/proc/{leader}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


print(f"scripted agent: {title!r} stage={stage} iteration={iteration} attempt={attempt}")

if "crash-always" in title or ("crash-once" in title and attempt == 1 and stage == "dev"):
    os.kill(runner_pid(), signal.SIGKILL)
    sys.exit(9)
if "slow" in title:
    time.sleep(120)
if "flaky-qa" in title and stage == "qa" and iteration == 1:
    print("QA: the edge case fails")
    sys.exit(1)
sys.exit(0)
