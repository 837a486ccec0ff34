# The agent image: slim Python (3.13, the runtime the Lambda functions are packaged for), git, and
# Baton's runner. ECS runs one container per stage job; the dispatcher passes the job (BATON_JOB),
# the API URL and a single-use launch code (BATON_LAUNCH_CODE) in the environment -- no API key.
# At start the runner exchanges the launch code for the job's token; the code is worth nothing
# once used.
#   docker build -f infra/agent.Dockerfile -t baton-agent .
# Agent CLIs (goose, claude, openhands) are added in images derived from this one.
FROM python:3.13-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 agent

WORKDIR /opt/baton
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt pytest bandit[sarif]
COPY chalicelib ./chalicelib

USER agent
ENV PYTHONPATH=/opt/baton PYTHONUNBUFFERED=1 HOME=/home/agent
# The runner works in a scratch directory under /tmp (the root filesystem can stay read-only).
WORKDIR /tmp
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "chalicelib.agent.runner"]
