"""A scripted agent for end-to-end tests: what it does depends on words in the task title.

* ``flaky-qa``     fails QA on the task's first iteration, passes afterwards
* ``crash-once``   kills its runner on the first attempt of the first stage (no more heartbeats)
* ``crash-always`` kills its runner on every attempt
* ``slow``         works for a long time (for kill tests), heartbeating via its runner
* ``same-qa-failure``  fails QA on iterations 1 to 3 with the same failing test (a JUnit proof whose
                   test's parameter and message change each time, as a real flaky value would), passes on 4
* anything else    passes every stage

Whatever it does, it first prints the notes Baton's director added to its prompt (if any).
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
prompt = open(os.environ["BATON_PROMPT_FILE"]).read() if os.environ.get("BATON_PROMPT_FILE") else ""
if "Notes from Baton's director" in prompt:
    print("director notes in my prompt:" + prompt.split("Notes from Baton's director", 1)[1])

if "crash-always" in title or ("crash-once" in title and attempt == 1 and stage == "dev"):
    os.kill(runner_pid(), signal.SIGKILL)
    sys.exit(9)
if "slow" in title:
    time.sleep(120)
if "same-qa-failure" in title and stage == "qa" and iteration <= 3:
    with open(os.path.join(os.environ["BATON_PROOFS_DIR"], "junit.xml"), "w") as junit:
        junit.write(f'<testsuite name="pytest" tests="2"><testcase classname="tests.test_checkout" name="test_ok"/>'
                    f'<testcase classname="tests.test_checkout" name="test_total[{iteration * 7}]">'
                    f'<failure message="total was {iteration * 100 + 1}">assert {iteration * 100 + 1} == 100</failure>'
                    f'</testcase></testsuite>')
    print(f"E   AssertionError: total was {iteration * 100 + 1} at {time.strftime('%H:%M:%S')}")
    sys.exit(1)
if "flaky-qa" in title and stage == "qa" and iteration == 1:
    print("QA: the edge case fails")
    sys.exit(1)
sys.exit(0)
