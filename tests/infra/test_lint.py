"""The packaged template (chalice package + infra/resources.yaml) passes cfn-lint and checkov.

Runs `make lint-infra`: the first run creates .venv-lint (checkov, cfn-lint) from PyPI and lets
chalice download the Lambda-platform wheels; later runs take ~20 s.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_packaged_template_passes_cfn_lint_and_checkov():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "MFLAGS"))}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result = subprocess.run(["make", "--no-print-directory", "lint-infra"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]          # cfn-lint exits non-zero on any error or warning
    assert (ROOT / "out" / "sam.json").is_file()
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", output)
    assert summary, output[-6000:]
    passed, failed, _skipped = map(int, summary.groups())
    assert failed == 0 and passed > 0, output[-6000:]
