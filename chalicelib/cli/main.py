"""The root ``baton`` command: global options, grouped help, and the one place where failures
become ``baton: <message>`` on stderr and an exit code (see ``errors.ExitCode``)."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import Any, Callable, Optional

import click

from .. import __version__
from ..agent.client import ApiError
from . import output
from .client import CliClient
from .config import ApiConfig, resolve
from .errors import EXIT_CODES_HELP, CliError, ExitCode, describe, exit_code_for

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CliContext:
    """What every command shares: the global options, and an API client made on first use (so
    ``baton up`` and ``--help`` need no configuration)."""

    def __init__(self, api_url: Optional[str] = None, api_key: Optional[str] = None, debug: bool = False,
                 claim_id: Optional[str] = None):
        self.api_url = api_url
        self.api_key = api_key
        self.debug = debug
        self.claim_id = claim_id
        self._config: Optional[ApiConfig] = None
        self._client: Optional[CliClient] = None

    @property
    def config(self) -> ApiConfig:
        if self._config is None:
            self._config = resolve(self.api_url, self.api_key)
        return self._config

    @property
    def resolved_config(self) -> Optional[ApiConfig]:
        """The configuration, if a command already resolved it (never resolves it itself)."""
        return self._config

    @property
    def client(self) -> CliClient:
        if self._client is None:
            self._client = CliClient(self.config.api_url, self.config.api_key, claim_id=self.claim_id)
        return self._client


pass_context = click.make_pass_decorator(CliContext, ensure=True)


def with_client(function: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the API client as the command's first argument."""

    @pass_context
    @functools.wraps(function)
    def wrapper(context: CliContext, *args: Any, **kwargs: Any) -> Any:
        return function(context.client, *args, **kwargs)

    return wrapper


class BatonGroup(click.Group):
    """A group whose help lists commands by section, and whose root turns every failure into
    one line and an exit code: never a traceback, unless ``--debug``."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sections: list[tuple[str, list[str]]] = []

    def add_section(self, title: str, commands: list[click.Command]) -> None:
        for command in commands:
            self.add_command(command)
        self.sections.append((title, [c.name or "" for c in commands]))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not self.sections:
            return super().format_commands(ctx, formatter)
        listed: set[str] = set()
        width = max((len(name) for name in self.commands), default=0)
        for title, names in [*self.sections, ("Other commands", sorted(set(self.commands) - {
                n for _, ns in self.sections for n in ns}))]:
            rows = []
            for name in names:
                command = self.get_command(ctx, name)
                if command is None or command.hidden or name in listed:
                    continue
                listed.add(name)
                rows.append((name, command.get_short_help_str(limit=formatter.width - 6 - width)))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.parent is not None:
            return super().invoke(ctx)
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except ApiError as error:
            self._fail(ctx, error, describe(_with_hint(ctx, error)), exit_code_for(error))
        except CliError as error:
            self._fail(ctx, error, error.message, error.exit_code)
        except KeyboardInterrupt:
            output.error("interrupted")
            ctx.exit(ExitCode.INTERRUPTED)
        except BrokenPipeError:  # `baton run events RUN | head`: the reader left; stop quietly
            _silence_stdout()
            ctx.exit(ExitCode.FAILED)
        except Exception as error:  # a bug of ours: one line, the traceback only on --debug
            self._fail(ctx, error, f"unexpected error: {type(error).__name__}: {error} "
                                   "(run with --debug for the traceback)", ExitCode.FAILED)

    @staticmethod
    def _fail(ctx: click.Context, error: BaseException, message: str, code: int) -> None:
        context = ctx.find_object(CliContext)
        if context is not None and context.debug:
            traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
        output.error(message)
        if isinstance(error, ApiError) and error.status == 400:
            for detail in error.details[:10]:
                if isinstance(detail, dict):
                    where = ".".join(str(p) for p in detail.get("loc", [])) or "body"
                    click.secho(f"  {where}: {detail.get('msg', '')}", err=True, fg="red")
        ctx.exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so flushing it at exit does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _with_hint(ctx: click.Context, error: ApiError) -> ApiError:
    """Say where the rejected key or the unreachable URL came from: a stale config file, or a
    forgotten environment variable, is the usual cause."""
    context = ctx.find_object(CliContext)
    config = context.resolved_config if context is not None else None
    if config is None:
        return error
    if error.status == 401:
        hint = f"the key came from {config.key_source}"
    elif error.status == 0 and config.url_source.endswith(".json"):
        hint = f"is the local stack running (`make up` or `baton up`)? The URL came from {config.url_source}"
    elif error.status == 0:
        hint = f"the URL came from {config.url_source}"
    else:
        return error
    return ApiError(error.status, error.code, f"{error.message.rstrip('.')}; {hint}", error.details)


ROOT_EPILOG = f"""\b
Configuration (first found wins, per value):
  --api-url/--api-key  >  BATON_API_URL/BATON_API_KEY  >  $BATON_CONFIG
  >  .baton/config.json in this directory or a parent (written by `baton up`)

\b
Exit codes:
{EXIT_CODES_HELP}

\b
Examples:
  baton up                                   # start the local stack (another terminal)
  baton project create demo --repo https://github.com/example/demo.git
  baton run start --project demo --tasks tasks.yaml --watch
  baton run start --project demo --tasks tasks.yaml --canary 10% --max-cost 25
  baton approve RUN_ID --gate deploy
"""


@click.group(name="baton", cls=BatonGroup, context_settings=CONTEXT_SETTINGS, epilog=ROOT_EPILOG)
@click.option("--api-url", metavar="URL", help="Baton API base URL (default: BATON_API_URL or the config file).")
@click.option("--api-key", metavar="KEY", help="API key (default: BATON_API_KEY or the config file).")
@click.option("--claim", "claim_id", metavar="CLAIM", envvar="BATON_CLAIM",
              help="The claim an agent key works under (sent as Baton-Claim; default: BATON_CLAIM). An agent's "
                   "handoffs, proofs and findings count only under its live claim of the task.")
@click.option("--debug", is_flag=True, help="Show a traceback when something fails.")
@click.version_option(__version__, "-V", "--version", prog_name="baton")
@click.pass_context
def cli(ctx: click.Context, api_url: Optional[str], api_key: Optional[str], claim_id: Optional[str],
        debug: bool) -> None:
    """Baton: drive multi-agent software pipelines from the terminal.

    Create projects, start runs whose tasks move through dev → qa → sec → docs, watch them, work
    tasks as an external agent (claim, heartbeat, handoff, proofs, advance), decide their gates
    (canary, deploy, budget), and manage roles and API keys. Every command has --help.
    """
    ctx.obj = CliContext(api_url, api_key, debug, claim_id)


def _register() -> None:
    from .commands import SECTIONS

    for title, commands in SECTIONS:
        cli.add_section(title, commands)


_register()


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of ``python -m chalicelib.cli`` and the ``baton`` wrapper."""
    try:
        cli.main(args=argv, prog_name="baton", standalone_mode=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return 0
