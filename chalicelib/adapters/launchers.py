"""Launching agent jobs: ECS RunTask in the cloud; a subprocess (or ``docker run``) on one machine.

A launcher takes a job spec (ids, stage, role command, API URL and a single-use launch code) and
starts ``python -m chalicelib.agent.runner`` with it. It returns an id for the launched job.

What the runner gets, and nothing else: ``BATON_JOB`` (the spec without the launch code),
``BATON_API_URL``, and the launch code. The runner spends the code for the job's token at once;
the code is worthless afterwards, and the token itself never leaves the runner's memory.

* Local subprocess: an allow-listed environment (PATH, HOME, LANG/LC_*, TZ, TMPDIR, the two
  variables above, and the ones ``BATON_AGENT_ENV`` names for the agent); no AWS or moto settings,
  no PYTHONPATH (the runner starts with Baton's checkout as its working directory). The launch
  code goes to the runner's stdin, so it is in no environment and no command line.
* ``docker run``: the same, as ``-e NAME`` whose values come from the docker client's environment
  (not its command line), the launch code on stdin (``-i``), and no host network: the API is
  reached through ``host.docker.internal``.
* ECS: ``BATON_JOB``, ``BATON_API_URL`` and ``BATON_LAUNCH_CODE`` as container overrides. The
  overrides are visible to whoever may describe the task; what they show is a code that was spent
  when the container started (documented hand-over on AWS).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404  # starts the runner (or docker) by design
import sys
import threading
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit, urlunsplit

from ..agent.work import agent_env_names, looks_secret

ROOT = Path(__file__).resolve().parents[2]
RUNNER_BASE_NAMES = ("PATH", "HOME", "LANG", "TZ", "TMPDIR")
DOCKER_CLIENT_NAMES = ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")
DOCKER_HOST_ALIAS = "host.docker.internal"


def job_environment(spec: dict[str, Any]) -> dict[str, str]:
    """What the runner reads besides its launch code: the API and the job (without the code)."""
    public = {k: v for k, v in spec.items() if k not in ("launch_code", "api_key")}
    return {"BATON_API_URL": spec["api_url"], "BATON_JOB": json.dumps(public)}


def runner_environment(spec: dict[str, Any], source: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The local runner's whole environment: an allow-list of this process's own, the job, and the
    variables BATON_AGENT_ENV grants the agent (with BATON_AGENT_ENV itself)."""
    source = os.environ if source is None else source
    env = {n: v for n, v in source.items() if n in RUNNER_BASE_NAMES or n.startswith("LC_")}
    granted = agent_env_names(source)
    if granted:
        env["BATON_AGENT_ENV"] = ",".join(granted)
        env.update({n: source[n] for n in granted if n in source})
    env = {n: v for n, v in env.items() if not looks_secret(v)}
    env.update(job_environment(spec))
    return env


def container_api_url(api_url: str) -> str:
    """The API as a container on the default bridge network reaches it: the host's loopback
    addresses become ``host.docker.internal``."""
    parts = urlsplit(api_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return api_url
    netloc = DOCKER_HOST_ALIAS + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def docker_command(spec: dict[str, Any], source: Optional[Mapping[str, str]] = None) -> tuple[list[str], dict[str, str]]:
    """``docker run`` argv and the docker client's environment: variable names on the command line
    (``-e NAME``), their values only in the client's environment; the launch code goes on stdin."""
    source = os.environ if source is None else source
    inner = runner_environment({**spec, "api_url": container_api_url(spec["api_url"])}, source)
    inner.pop("PATH", None)   # the image has its own PATH, HOME and TMPDIR
    inner.pop("HOME", None)
    inner.pop("TMPDIR", None)
    client = {n: source[n] for n in (*RUNNER_BASE_NAMES, *DOCKER_CLIENT_NAMES) if n in source}
    client.update(inner)
    args = ["docker", "run", "-i", "--rm", f"--add-host={DOCKER_HOST_ALIAS}:host-gateway"]
    for name in inner:
        args += ["-e", name]
    args.append(spec["image"])
    return args, client


def hand_over(process: subprocess.Popen, launch_code: str) -> None:
    """Write the launch code as one line to the runner's stdin and close it."""
    pipe = process.stdin
    if pipe is None:
        return
    try:
        pipe.write(launch_code.encode() + b"\n")
        pipe.flush()
    except BrokenPipeError:
        pass   # the runner died at once; its log says why
    finally:
        try:
            pipe.close()
        except BrokenPipeError:
            pass


class LocalLauncher:
    """Runs each job as a subprocess of this machine (``docker run`` when an engine answers and the
    role names an image). Output goes to ``<workdir>/jobs/<job_id>.log``."""

    def __init__(self, workdir: Path, python: str = sys.executable):
        self.workdir = Path(workdir)
        self.python = python
        self.processes: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._docker: Optional[bool] = None

    def docker_available(self) -> bool:
        if self._docker is None:
            docker = shutil.which("docker")
            self._docker = bool(docker) and subprocess.run([docker or "docker", "info"], capture_output=True,  # nosec B603 B607  # docker info, no input
                                                           timeout=10).returncode == 0
        return self._docker

    def command(self, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that start the job's runner."""
        if spec.get("image") and self.docker_available():
            return docker_command(spec)
        return [self.python, "-m", "chalicelib.agent.runner"], runner_environment(spec)

    def launch(self, spec: dict[str, Any]) -> str:
        job_id = spec["job_id"]
        launch_code = spec["launch_code"]
        if not isinstance(launch_code, str) or "\n" in launch_code or "\r" in launch_code:
            raise ValueError("the launch code must be one line of text")
        with self._lock:
            existing = self.processes.get(job_id)
            if existing is not None and existing.poll() is None:
                return str(existing.pid)  # a redelivered launch of a job already running
        logs = self.workdir / "jobs"
        logs.mkdir(parents=True, exist_ok=True)
        args, env = self.command(spec)
        # The runner's working copies go under the stack's work dir, not the machine's /tmp: a
        # runner removes its own after every job, and one killed mid-job (a crashed container)
        # leaves its copy where the stack's owner finds and clears it.
        scratch = logs / "work"
        scratch.mkdir(exist_ok=True)
        env = {**env, "TMPDIR": str(scratch)}
        with open(logs / f"{job_id}.log", "ab") as log:
            process = subprocess.Popen(args, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,  # nosec B603  # fixed argv: this interpreter and the runner module, or docker run
                                       stdin=subprocess.PIPE, start_new_session=True)
        hand_over(process, launch_code)
        with self._lock:
            self.processes[job_id] = process
        return str(process.pid)

    def stop_all(self) -> None:
        with self._lock:
            processes = list(self.processes.values())
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()


class EcsLauncher:
    """ECS RunTask on Fargate, with the job's environment (and its single-use launch code) as
    container overrides. The job id is the client token, so a redelivered launch starts no second
    container."""

    def __init__(self, client: Any, cluster: str, task_definition: str, subnets: list[str],
                 security_groups: list[str], container_name: str = "agent"):
        self.client = client
        self.cluster = cluster
        self.task_definition = task_definition
        self.subnets = subnets
        self.security_groups = security_groups
        self.container_name = container_name

    def launch(self, spec: dict[str, Any]) -> str:
        variables = {**job_environment(spec), "BATON_LAUNCH_CODE": spec["launch_code"]}
        environment = [{"name": k, "value": v} for k, v in variables.items()]
        response = self.client.run_task(
            cluster=self.cluster, taskDefinition=self.task_definition, launchType="FARGATE", count=1,
            clientToken=spec["job_id"][:64], startedBy="baton-dispatcher",
            networkConfiguration={"awsvpcConfiguration": {"subnets": self.subnets,
                                                          "securityGroups": self.security_groups,
                                                          "assignPublicIp": "DISABLED"}},
            overrides={"containerOverrides": [{"name": self.container_name, "environment": environment}]},
            tags=[{"key": "baton:job", "value": spec["job_id"]}, {"key": "baton:task", "value": spec["task_id"]}])
        failures = response.get("failures") or []
        if failures or not response.get("tasks"):
            raise RuntimeError(f"ECS could not start the agent: {failures}")
        return response["tasks"][0]["taskArn"]
