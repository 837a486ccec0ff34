"""bandit finds nothing in the code that ships to Lambda (app.py and chalicelib, but the demo's
sample repository)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bandit_is_clean_on_app_and_chalicelib():
    bandit = Path(sys.executable).with_name("bandit")
    completed = subprocess.run([str(bandit), "-q", "-r", "app.py", "chalicelib", "-x", "chalicelib/demo/sample",
                                "-f", "custom", "--msg-template", "{relpath}:{line} {test_id} {msg}"],
                               cwd=ROOT, capture_output=True, text=True, timeout=300)
    findings = [line for line in completed.stdout.splitlines() if line.strip()]
    assert completed.returncode == 0 and not findings, "\n".join(findings)
