"""Failure fingerprints: what makes two failed iterations "the same failure".

A failure is recognised, in this order, by the names of its failing tests (from the JUnit XML the
stage produced), by the fingerprints of the critical/high findings that failed it, or by the error
line of the agent's output (or of the advance's notes). Each is normalised first, so that what
changes from one run of the same failure to the next does not count: numbers, hexadecimal and
Baton ids, absolute paths (their last component is kept), dates and times.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

MAX_JUNIT_CHARS = 5_000_000
MAX_TESTS = 200
MAX_LINE = 300

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
                        r"|\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_PATH = re.compile(r"(?<![\w.~-])(?:[A-Za-z]:)?(?:[\\/][^\s\\/:'\"()\[\]{},;<>]+){2,}")
_PREFIXED_ID = re.compile(r"\b[a-z]{2,8}_[0-9A-Za-z]{10,}\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{7,}\b")
_NUMBER = re.compile(r"(?<![A-Za-z_<])\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")
_ERROR_WORDS = re.compile(r"error|exception|fail|fatal|traceback|assert|panic|denied|refused|not found|timed? ?out",
                          re.IGNORECASE)
_TESTCASE = re.compile(r"<testcase\b([^>]*?)(?:/>|>(.*?)</testcase\s*>)", re.DOTALL)
_ATTRIBUTE = re.compile(r"""\b(name|classname)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_FAILED_BODY = re.compile(r"<(?:failure|error)\b")


def normalise(text: str) -> str:
    """The text with what varies between two runs of the same failure replaced by placeholders."""
    text = _TIMESTAMP.sub("<ts>", text)
    text = _UUID.sub("<id>", text)
    text = _PATH.sub(lambda m: re.split(r"[\\/]", m.group(0))[-1], text)
    text = _PREFIXED_ID.sub("<id>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACE.sub(" ", text).strip()[:MAX_LINE]


def failing_tests_in_junit(text: str) -> list[str]:
    """The failing (failure or error) test cases of a JUnit XML document, as ``classname::name``.
    Read with a tolerant scanner, never an XML parser: the file is the agent's, whatever it holds."""
    names: list[str] = []
    for match in _TESTCASE.finditer(text[:MAX_JUNIT_CHARS]):
        if not match.group(2) or not _FAILED_BODY.search(match.group(2)):
            continue
        attributes = {m.group(1): html.unescape(m.group(2) if m.group(2) is not None else m.group(3))
                      for m in _ATTRIBUTE.finditer(match.group(1))}
        name = attributes.get("name", "")
        if not name:
            continue
        names.append(f"{attributes['classname']}::{name}" if attributes.get("classname") else name)
        if len(names) >= MAX_TESTS:
            break
    return names


def error_line(text: str) -> str:
    """The line of an output that says what went wrong: the last one naming an error, else the last
    non-empty one ("" for an empty output)."""
    lines = [line.strip() for line in text.splitlines()[-400:] if line.strip()]
    for line in reversed(lines):
        if _ERROR_WORDS.search(line):
            return line[:1000]
    return lines[-1][:1000] if lines else ""


@dataclass(frozen=True)
class Failure:
    """A failure's identity: its fingerprint (16 hex digits), what it was taken from, and a sample a
    person can read."""

    fingerprint: str
    source: str
    sample: str


def _digest(source: str, parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join([source, *parts]).encode()).hexdigest()[:16]


def _listed(items: Sequence[str], shown: int = 5) -> str:
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


def failure_of(*, failing_tests: Iterable[str] = (), finding_keys: Iterable[str] = (),
               error: str = "") -> Optional[Failure]:
    """The failure's fingerprint from the best evidence given: failing tests, then failing findings,
    then the error line. None when none of them says anything."""
    tests = sorted({normalise(name) for name in failing_tests if name and name.strip()})[:MAX_TESTS]
    if tests:
        return Failure(_digest("tests", tests), "tests", _listed(tests)[:MAX_LINE])
    keys = sorted({key.strip() for key in finding_keys if key and key.strip()})
    if keys:
        return Failure(_digest("findings", keys), "findings", _listed([k[:80] for k in keys])[:MAX_LINE])
    line = normalise(error_line(error)) if error else ""
    if line:
        return Failure(_digest("error", [line]), "error", line)
    return None


__all__ = ["Failure", "error_line", "failing_tests_in_junit", "failure_of", "normalise"]
