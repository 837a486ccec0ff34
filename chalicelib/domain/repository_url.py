"""Which repository URLs a project may name (pure: the caller says which stage it runs in).

An agent runs ``git clone <repository_url>``, so the URL is an argument to git (and through it to
ssh): it must never be read as an option, never carry a secret, and never reach the machine's own
disk on a deployed stage.

Allowed
-------
* ``https://host/path`` and ``ssh://[user@]host[:port]/path``;
* scp-like ``user@host:path`` (``git@github.com:org/repo.git``);
* ``file:///path`` and absolute local paths (``/srv/repo.git``) only on the ``local`` and ``test``
  stages (the local stack, the demo and the tests use local repositories; a deployed API must not
  let a caller point an agent at the host's own files).

Refused
-------
* anything else (``http://``, ``git://``, ``ext::``, relative paths ...);
* a leading ``-`` anywhere git or ssh would read it as an option (the URL, a host, a user);
* credentials in the URL (``https://user:token@host/...``, ``https://token@host/...``,
  ``ssh://user:password@host/...``): use a git credential helper or a deploy key;
* whitespace, control characters (also percent-encoded), and more than 2048 characters.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

MAX_LENGTH = 2048
LOCAL_STAGES = frozenset({"local", "test"})

_ENCODED_CONTROL = re.compile(r"%(?:[01][0-9a-fA-F]|7[fF])")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*|\[?[0-9A-Fa-f]*:[0-9A-Fa-f:.]*\]?)$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")
_SCP = re.compile(r"^(?P<user>[^@/:]+)@(?P<host>[^@/:]+):(?P<path>.*)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

ALLOWED = "https://host/path, ssh://host/path or git@host:path"
ALLOWED_LOCALLY = ALLOWED + ", or (on the local and test stages) file:///path or an absolute path"
REPOSITORY_URL_HELP = ("https://host/path, ssh://host/path or git@host:path (file:///path and absolute paths only on "
                       "the local and test stages); no credentials in the URL, no leading '-'")
NO_CREDENTIALS = ("repository_url must not carry credentials (user:password or a token before '@'): "
                  "give agents access with a git credential helper or a deploy key instead")


def allows_local(stage: Optional[str]) -> bool:
    """Whether ``stage`` may name repositories on the machine's own disk."""
    return stage in LOCAL_STAGES


def check_repository_url(value: str, *, allow_local: bool = True) -> str:
    """``value`` if a project may name it, else ValueError saying why and what is allowed.

    ``allow_local``: whether ``file://`` URLs and absolute paths are allowed (``allows_local(stage)``).
    """
    allowed = ALLOWED_LOCALLY if allow_local else ALLOWED
    if not isinstance(value, str) or not value:
        raise ValueError(f"repository_url must be a git URL: {allowed}")
    if len(value) > MAX_LENGTH:
        raise ValueError(f"repository_url may be at most {MAX_LENGTH} characters")
    if not value.isprintable() or " " in value or _ENCODED_CONTROL.search(value):
        raise ValueError("repository_url must not contain spaces, whitespace or control characters")
    if value.startswith("-"):
        raise ValueError("repository_url must not start with '-' (git would read it as an option)")
    lowered = value.lower()
    if lowered.startswith(("https://", "ssh://")):
        _check_remote(value, ssh=lowered.startswith("ssh://"))
    elif lowered.startswith("file://") or value.startswith("/"):
        if not allow_local:
            raise ValueError("repository_url may name a local repository (file:// or an absolute path) only on "
                             f"the local and test stages; here use {ALLOWED}")
        _check_local(value)
    elif _SCHEME.match(value) or "::" in value:
        raise ValueError(f"repository_url must be {allowed} (http://, git:// and other transports are refused)")
    else:
        _check_scp(value, allowed)
    return value


def _check_remote(value: str, *, ssh: bool) -> None:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError("repository_url is not a valid URL (check the host and port)") from None
    if parts.password is not None or (parts.username is not None and not ssh):
        raise ValueError(NO_CREDENTIALS)
    if parts.username is not None and not _USER.match(parts.username):
        raise ValueError("repository_url names an ssh user that is not a plain user name (letters, digits, . _ -; "
                         "not starting with '-')")
    host = parts.hostname or ""
    if not host or not _HOST.match(host):
        raise ValueError("repository_url must name a host (letters, digits, '.', '-'; not starting with '-')")
    if parts.path in ("", "/"):
        raise ValueError("repository_url must name a repository path after the host")


def _check_local(value: str) -> None:
    path = value[len("file://"):] if value.lower().startswith("file://") else value
    if not path.startswith("/"):
        raise ValueError("a file:// repository_url must name an absolute path (file:///srv/repo.git)")


def _check_scp(value: str, allowed: str) -> None:
    match = _SCP.match(value)
    if match is None:
        if "@" in value and ":" in value.split("@", 1)[0]:
            raise ValueError(NO_CREDENTIALS)
        raise ValueError(f"repository_url must be {allowed}")
    if not _USER.match(match["user"]):
        raise ValueError("repository_url names an ssh user that is not a plain user name (letters, digits, . _ -; "
                         "not starting with '-')")
    if not _HOST.match(match["host"]):
        raise ValueError("repository_url must name a host (letters, digits, '.', '-'; not starting with '-')")
    if not match["path"] or match["path"].startswith("-"):
        raise ValueError("repository_url must name a repository path after 'host:' (not starting with '-')")
