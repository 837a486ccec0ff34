"""Demo docs agent: documents the feature in docs/<feature>.md and checks the example runs."""

import subprocess  # nosec B404  # runs the docs example
import sys

from _common import PROOFS, WORK, feature, handoff, run

name = feature()
docs = WORK / "docs"
docs.mkdir(exist_ok=True)
(docs / f"{name}.md").write_text(f"# {name}\n\n```python\nfrom textkit.{name} import {name}\n```\n")
check = subprocess.run([sys.executable, "-c", f"from textkit.{name} import {name}"], cwd=WORK,  # nosec B603  # this interpreter, fixed argv
                       capture_output=True, text=True)
run("git", "add", "-A")
(PROOFS / "docs.diff").write_text(run("git", "diff", "--cached").stdout)
if check.returncode:
    print(check.stderr)
    sys.exit(1)
handoff("docs", "cicd", f"Documented {name} in docs/{name}.md; the import example runs.",
        work_done=[(f"docs/{name}.md", "usage")])
