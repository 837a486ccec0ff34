"""Demo security agent: bandit over the package, its SARIF report is the proof (and the findings)."""

import json
import subprocess  # nosec B404  # runs bandit
import sys

from _common import PROOFS, WORK, handoff

report = PROOFS / "bandit.sarif"
result = subprocess.run([sys.executable, "-m", "bandit", "-r", "textkit", "-f", "sarif", "-o", str(report), "-q"],  # nosec B603  # this interpreter, fixed argv
                        cwd=WORK, capture_output=True, text=True)
print(result.stdout[-800:], result.stderr[-800:])
if not report.exists():
    print("security: bandit produced no report")
    sys.exit(1)
results = [r for run in json.loads(report.read_text()).get("runs", []) for r in run.get("results", [])]
serious = [r for r in results if r.get("level") == "error"]
handoff("security", "docs", f"bandit: {len(results)} result(s), {len(serious)} serious.",
        work_done=[("textkit/", "bandit -r textkit (SARIF)")],
        decisions=[("bandit for the scan", ["semgrep"], "no network needed and it speaks SARIF")],
        notes="No secrets, no shell or eval in the change.")
sys.exit(1 if serious else 0)
