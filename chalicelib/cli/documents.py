"""Input files of the CLI: a run's tasks file, and JSON/YAML documents (handoffs, roles).

Every problem is a CliError (exit 2) that names the file and, where it can, the line or the item.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

from .errors import CliError, ExitCode

PIPELINE_STAGES = ("dev", "qa", "sec", "docs")
RUN_FILE_KEYS = {"title", "stages", "max_iterations", "parallelism", "deploy_gate", "tasks"}
TASK_KEYS = {"title", "description", "priority"}


def bad_file(source: str, message: str) -> CliError:
    return CliError(f"{source}: {message}", ExitCode.USAGE)


def load_document(stream: IO[str]) -> Any:
    """Parse a JSON or YAML file (YAML reads JSON too); a syntax error names the line."""
    source = getattr(stream, "name", "<input>")
    try:
        return yaml.safe_load(stream)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise bad_file(source, f"is not valid YAML or JSON: {error.problem or error}{where}") from None
    except yaml.YAMLError as error:
        raise bad_file(source, f"is not valid YAML or JSON: {error}") from None


def load_mapping(stream: IO[str], what: str) -> dict[str, Any]:
    data = load_document(stream)
    if not isinstance(data, dict):
        raise bad_file(getattr(stream, "name", "<input>"), f"must hold a mapping of fields ({what})")
    return data


def parse_stages(value: Any, source: str) -> list[str]:
    """``dev,qa`` or ``[dev, qa]`` → ``["dev", "qa"]``, checked to be an ordered subset of the pipeline."""
    if isinstance(value, str):
        stages = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, list) and all(isinstance(s, str) for s in value):
        stages = [s.strip() for s in value]
    else:
        raise bad_file(source, "stages must be a list of stage names (dev, qa, sec, docs)")
    unknown = [s for s in stages if s not in PIPELINE_STAGES]
    if unknown:
        raise bad_file(source, f"unknown stage(s) {', '.join(unknown)}; use an ordered subset of dev, qa, sec, docs")
    if not stages:
        raise bad_file(source, "give at least one stage")
    order = [PIPELINE_STAGES.index(s) for s in stages]
    if order != sorted(set(order)):
        raise bad_file(source, "stages must be distinct and in pipeline order: dev, qa, sec, docs")
    return stages


def parse_tasks_file(data: Any, source: str) -> dict[str, Any]:
    """A tasks file → the fields of a run it gives: ``tasks`` always, and ``title``, ``stages``,
    ``max_iterations``, ``parallelism``, ``deploy_gate`` when it sets them.

    The file is either a list of tasks or a mapping ``{title?, stages?, ..., tasks: [...]}``; a
    task is ``{title, description?, priority?}`` or just its title as a string.
    """
    if data is None:
        raise bad_file(source, "is empty; list the tasks, e.g. `- title: add login`")
    if isinstance(data, list):
        run: dict[str, Any] = {"tasks": data}
    elif isinstance(data, dict):
        unknown = sorted(set(map(str, data)) - RUN_FILE_KEYS)
        if unknown:
            raise bad_file(source, f"unknown field(s) {', '.join(unknown)}; a tasks file may set "
                                   f"{', '.join(sorted(RUN_FILE_KEYS))}")
        if "tasks" not in data:
            raise bad_file(source, "has no `tasks:` list")
        run = dict(data)
    else:
        raise bad_file(source, "must be a list of tasks, or a mapping with a `tasks:` list")
    if not isinstance(run["tasks"], list) or not run["tasks"]:
        raise bad_file(source, "`tasks` must be a non-empty list")
    run["tasks"] = [_parse_task(item, index, source) for index, item in enumerate(run["tasks"], start=1)]
    if "title" in run and (not isinstance(run["title"], str) or not run["title"].strip()):
        raise bad_file(source, "title must be a non-empty string")
    if "stages" in run:
        run["stages"] = parse_stages(run["stages"], source)
    for name in ("max_iterations", "parallelism"):
        if name in run and (not isinstance(run[name], int) or isinstance(run[name], bool) or run[name] < 1):
            raise bad_file(source, f"{name} must be a whole number of at least 1")
    if "deploy_gate" in run and not isinstance(run["deploy_gate"], bool):
        raise bad_file(source, "deploy_gate must be true or false")
    return run


def _parse_task(item: Any, index: int, source: str) -> dict[str, Any]:
    where = f"task {index}"
    if isinstance(item, str):
        item = {"title": item}
    if not isinstance(item, dict):
        raise bad_file(source, f"{where} must be a mapping with a title (or just the title)")
    unknown = sorted(set(map(str, item)) - TASK_KEYS)
    if unknown:
        raise bad_file(source, f"{where} has unknown field(s) {', '.join(unknown)}; a task has title, "
                               "description, priority")
    title = item.get("title")
    if not isinstance(title, str) or not title.strip():
        raise bad_file(source, f"{where} needs a non-empty title")
    if len(title) > 200:
        raise bad_file(source, f"{where}: the title is longer than 200 characters")
    task: dict[str, Any] = {"title": title.strip()}
    if item.get("description") is not None:
        if not isinstance(item["description"], str):
            raise bad_file(source, f"{where} ({title!r}): description must be text")
        task["description"] = item["description"]
    if item.get("priority") is not None:
        priority = item["priority"]
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 10:
            raise bad_file(source, f"{where} ({title!r}): priority must be a whole number from 0 to 10")
        task["priority"] = priority
    return task
