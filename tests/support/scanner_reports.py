"""A real scanner's output: bandit 1.9.4 run on ``tests/data/sample_app`` (see its README), as
SARIF and as bandit's JSON, and what a human reads in it. 10 results: 2 high, 5 medium, 3 low."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
BANDIT_SARIF = (DATA / "bandit_report.sarif").read_text()
BANDIT_JSON = (DATA / "bandit_report.json").read_text()
EXPECTED_AT_OR_ABOVE_MEDIUM = {  # rule -> (severity, file, line): what a human reads in bandit's report
    "B602": ("high", "tests/data/sample_app/app.py", 14),
    "B324": ("high", "tests/data/sample_app/app.py", 29),
    "B506": ("medium", "tests/data/sample_app/app.py", 19),
    "B301": ("medium", "tests/data/sample_app/app.py", 24),
    "B307": ("medium", "tests/data/sample_app/app.py", 34),
    "B306": ("medium", "tests/data/sample_app/storage.py", 8),
    "B104": ("medium", "tests/data/sample_app/storage.py", 13),
}
