"""Demo QA agent: runs the suite with a JUnit XML proof; reports failing tests as bugs."""

import json
import subprocess  # nosec B404  # runs pytest
import sys
import xml.etree.ElementTree as ET  # nosec B405  # parses the JUnit file its own pytest run wrote

from _common import PROOFS, WORK, feature, handoff

junit = PROOFS / "junit.xml"
result = subprocess.run([sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}", "tests"], cwd=WORK,  # nosec B603  # this interpreter, fixed argv
                        capture_output=True, text=True)
(PROOFS / "pytest.log").write_text(result.stdout + result.stderr)
print(result.stdout[-1500:])
failures = []
if junit.exists():
    for case in ET.parse(junit).getroot().iter("testcase"):  # nosec B314  # the JUnit file its own pytest run wrote
        failure = case.find("failure")
        if failure is not None:
            failures.append({"title": f"{case.get('classname')}.{case.get('name')} fails",
                             "description": (failure.get("message") or "")[:500], "severity": "high",
                             "file": case.get("file") or f"tests/test_{feature()}.py", "line": int(case.get("line") or 1),
                             "recommendation": "fix the implementation so the test passes"})
if failures:
    handoff("qa", "dev", f"{len(failures)} test(s) fail; sending the task back to dev.",
            work_done=[("tests/", "ran the whole suite")], notes=json.dumps(failures, indent=2)[:2000],
            confidence="high")
    print("qa: failing tests, the stage fails")
    sys.exit(1)
handoff("qa", "security", "All tests pass.", work_done=[("tests/", "ran the whole suite with JUnit XML output")],
        notes="Nothing suspicious in behaviour; the change is small.")
