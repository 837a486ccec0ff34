"""Where the CLI finds the Baton API and its key.

Precedence, per value: ``--api-url``/``--api-key`` > ``BATON_API_URL``/``BATON_API_KEY`` > a config
file: ``$BATON_CONFIG`` when set, else ``.baton/config.json`` in the current directory or the
nearest parent (``baton up``/``make up`` writes it). A key from the file is used only with the
file's own URL, so a local admin key is never sent to an API named elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from .errors import CliError, ExitCode

CONFIG_DIR = ".baton"
CONFIG_NAME = "config.json"
NOT_CONFIGURED = ("no Baton API configured: start the local stack with `make up` (or `baton up`), "
                  "or set BATON_API_URL and BATON_API_KEY")


@dataclass(frozen=True)
class ApiConfig:
    api_url: str
    api_key: str
    url_source: str
    key_source: str


def find_config_file(start: Path, environ: Mapping[str, str]) -> Optional[Path]:
    """``$BATON_CONFIG`` (which must exist when set), else the nearest ``.baton/config.json``."""
    explicit = environ.get("BATON_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise CliError(f"BATON_CONFIG names {path}, which does not exist", ExitCode.USAGE)
        return path
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_DIR / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def read_config_file(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read {path}: {error}", ExitCode.USAGE) from None
    if not isinstance(data, dict):
        raise CliError(f"{path} must hold a JSON object with api_url and api_key", ExitCode.USAGE)
    return {name: str(data[name]) for name in ("api_url", "api_key") if isinstance(data.get(name), str)}


def resolve(api_url: Optional[str] = None, api_key: Optional[str] = None, *,
            environ: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None) -> ApiConfig:
    """The API to talk to, or a CliError (exit 2) saying how to configure one."""
    environ = os.environ if environ is None else environ
    url, url_source = _first((api_url, "--api-url"), (environ.get("BATON_API_URL"), "BATON_API_URL"))
    key, key_source = _first((api_key, "--api-key"), (environ.get("BATON_API_KEY"), "BATON_API_KEY"))
    if not (url and key):
        path = find_config_file(cwd or Path.cwd(), environ)
        stored = read_config_file(path) if path else {}
        if not url and stored.get("api_url"):
            url, url_source = stored["api_url"], str(path)
        if not key and stored.get("api_key") and _same_api(url, stored.get("api_url")):
            key, key_source = stored["api_key"], str(path)
    if not url:
        raise CliError(NOT_CONFIGURED, ExitCode.USAGE)
    if not key:
        raise CliError(f"no API key for {url}: pass --api-key or set BATON_API_KEY", ExitCode.USAGE)
    if not url.startswith(("http://", "https://")):
        raise CliError(f"the API URL must start with http:// or https:// (got {url!r} from {url_source})",
                       ExitCode.USAGE)
    return ApiConfig(api_url=url.rstrip("/"), api_key=key, url_source=url_source, key_source=key_source)


def _first(*candidates: tuple[Optional[str], str]) -> tuple[Optional[str], str]:
    for value, source in candidates:
        if value:
            return value.strip(), source
    return None, ""


def _same_api(url: Optional[str], stored_url: Optional[str]) -> bool:
    return bool(stored_url) and (url or stored_url).rstrip("/") == (stored_url or "").rstrip("/")
