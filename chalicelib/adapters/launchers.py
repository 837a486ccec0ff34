"""Launching agent jobs: ECS RunTask in the cloud; a subprocess (or ``docker run``) on one machine.

A launcher takes a job spec (ids, stage, role command, API URL and the job's own API key) and
starts ``python -m chalicelib.agent.runner`` with it. It returns an id for the launched job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404  # runs git and agent commands by design
import sys
import threading
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[2]


def job_environment(spec: dict[str, Any]) -> dict[str, str]:
    """What the runner reads: the API, its job key, and the job itself (without the key)."""
    public = {k: v for k, v in spec.items() if k != "api_key"}
    return {"BATON_API_URL": spec["api_url"], "BATON_API_KEY": spec["api_key"], "BATON_JOB": json.dumps(public)}


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

    def launch(self, spec: dict[str, Any]) -> str:
        job_id = spec["job_id"]
        with self._lock:
            existing = self.processes.get(job_id)
            if existing is not None and existing.poll() is None:
                return str(existing.pid)  # a redelivered launch of a job already running
        logs = self.workdir / "jobs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **job_environment(spec), "PYTHONPATH": str(ROOT)}
        for name in [n for n in env if n.startswith("AWS_ENDPOINT_URL")]:
            env.pop(name)  # the agent talks to Baton's API only, never to AWS
        if spec.get("image") and self.docker_available():
            args = ["docker", "run", "--rm", "--network", "host"]
            for name, value in job_environment(spec).items():
                args += ["-e", f"{name}={value}"]
            args.append(spec["image"])
        else:
            args = [self.python, "-m", "chalicelib.agent.runner"]
        with open(logs / f"{job_id}.log", "ab") as log:
            process = subprocess.Popen(args, cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT,  # nosec B603  # fixed argv: this interpreter and the runner module, or docker run
                                       stdin=subprocess.DEVNULL, start_new_session=True)
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
    """ECS RunTask on Fargate, with the job's environment as container overrides. The job id is
    the client token, so a redelivered launch starts no second container."""

    def __init__(self, client: Any, cluster: str, task_definition: str, subnets: list[str],
                 security_groups: list[str], container_name: str = "agent"):
        self.client = client
        self.cluster = cluster
        self.task_definition = task_definition
        self.subnets = subnets
        self.security_groups = security_groups
        self.container_name = container_name

    def launch(self, spec: dict[str, Any]) -> str:
        environment = [{"name": k, "value": v} for k, v in job_environment(spec).items()]
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
