"""Exit codes of the ``baton`` command and the errors that carry them.

Scripts branch on these numbers, so they only ever grow: an existing code keeps its meaning.
"""

from __future__ import annotations

from enum import IntEnum

from ..agent.client import ApiError


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1             # the API refused (400, 409, 422, 5xx), or a watched run did not succeed
    USAGE = 2              # bad command line, bad input file, no configuration
    AUTH = 3               # 401/403: the key is wrong, revoked or lacks the right
    NOT_FOUND = 4          # 404: no such project, run, task, ...
    UNREACHABLE = 5        # no answer from the API (not running, wrong URL, network)
    NOTHING_TO_CLAIM = 6   # `baton claim`: the queue of that stage is empty (API 204)
    TIMED_OUT = 7          # `baton run watch --timeout`: the run had not ended by then
    INTERRUPTED = 130      # Ctrl-C


EXIT_CODES: tuple[tuple[int, str], ...] = (
    (ExitCode.OK, "ok"),
    (ExitCode.FAILED, "the API refused (400/409/422/5xx), or a watched run did not succeed"),
    (ExitCode.USAGE, "usage, input file or configuration error"),
    (ExitCode.AUTH, "the key is wrong, revoked or lacks the right (401/403)"),
    (ExitCode.NOT_FOUND, "not found (404)"),
    (ExitCode.UNREACHABLE, "the API cannot be reached"),
    (ExitCode.NOTHING_TO_CLAIM, "baton claim: nothing queued at that stage"),
    (ExitCode.TIMED_OUT, "baton run watch --timeout: the run had not ended in time"),
)
EXIT_CODES_HELP = "\n".join(f"  {int(code)}  {meaning}" for code, meaning in EXIT_CODES)


class CliError(Exception):
    """A failure to report as one line, ``baton: <message>``, with its exit code."""

    def __init__(self, message: str, exit_code: int = ExitCode.FAILED):
        super().__init__(message)
        self.message = message
        self.exit_code = int(exit_code)


def exit_code_for(error: ApiError) -> ExitCode:
    if error.status == 0:
        return ExitCode.UNREACHABLE
    if error.status in (401, 403):
        return ExitCode.AUTH
    if error.status == 404:
        return ExitCode.NOT_FOUND
    return ExitCode.FAILED


def describe(error: ApiError) -> str:
    """The API's own sentence, then its status and code for the record: ``msg (409 conflict)``."""
    message = error.message.strip().rstrip(".") or "the API answered with an error"
    if error.status == 0:
        return message
    return f"{message} ({error.status} {error.code})"
