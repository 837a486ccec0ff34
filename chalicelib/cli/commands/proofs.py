"""``baton proof upload|list|show|get``: evidence files, stored in S3 through presigned URLs."""

from __future__ import annotations

import mimetypes
import re
import sys
from pathlib import Path
from typing import Any, Optional

import click

from ...agent import transfer
from .. import output
from ..client import CliClient
from ..errors import CliError, ExitCode
from ..main import with_client
from ..output import json_option, short_time

PROOF_TYPES = ("screenshot", "log", "report", "test_result", "code_diff", "other")


@click.group(epilog="""\b
Examples:
  baton proof upload TASK_ID junit.xml --type test_result
  baton proof upload TASK_ID screen.png --type screenshot
  baton proof list --task TASK_ID
  baton proof get PROOF_ID -o junit.xml
""")
def proof() -> None:
    """Upload, list and download proofs.

    Proofs are the evidence behind a stage's result (logs, test results, screenshots, ...). Files go
    straight to S3 through short-lived presigned URLs; Baton checks size and SHA-256 before a proof
    counts as stored.
    """


def proof_filename(name: str) -> str:
    """A name the API accepts (letters, digits, '.', '_', '-'; no '..'; ≤128), kept readable."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip(".") or "proof"
    if len(cleaned) > 128:
        stem, dot, suffix = cleaned.rpartition(".")
        cleaned = (stem[: 127 - len(suffix)] + dot + suffix) if dot and len(suffix) < 16 else cleaned[:128]
    return cleaned


@proof.command("upload")
@click.argument("task_id", metavar="TASK")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--type", "proof_type", required=True, type=click.Choice(PROOF_TYPES), help="What the file proves.")
@click.option("--content-type", metavar="MIME", help="MIME type (default: guessed from the file name).")
@click.option("--filename", metavar="NAME", help="Name to store it under (default: the file's name, cleaned).")
@json_option
@with_client
def upload_proof(client: CliClient, task_id: str, path: Path, proof_type: str, content_type: Optional[str],
                 filename: Optional[str], as_json: bool) -> None:
    """Upload a file as a proof of a task's current stage.

    Declares the file (size, SHA-256), uploads it to the presigned S3 form, then asks Baton to
    confirm it; prints where it is stored.
    """
    data = path.read_bytes()
    if not data:
        raise CliError(f"{path} is empty; a proof needs at least one byte", ExitCode.USAGE)
    name = filename or proof_filename(path.name)
    mime = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    declared = client.post(f"/tasks/{task_id}/proofs", {"type": proof_type, "filename": name, "content_type": mime,
                                                        "size": len(data), "sha256": transfer.file_digest(data)})
    pending, form = declared["proof"], declared["upload"]
    transfer.upload_presigned_post(form["url"], form.get("fields") or {}, name, mime, data)
    stored = client.post(f"/proofs/{pending['id']}/confirm")
    if as_json:
        output.print_json(stored)
        return
    output.details([("proof", stored["id"]), ("status", output.status_text(stored.get("status"))),
                    ("type", stored.get("type")), ("file", f"{stored.get('filename')} ({stored.get('size')} bytes, "
                                                           f"{stored.get('content_type')})"),
                    ("stored at", stored.get("s3_key")), ("sha256", stored.get("sha256"))])


@proof.command("list")
@click.option("--task", "task_id", metavar="TASK", help="Proofs of this task.")
@click.option("--project", "-p", "project_id", metavar="PROJECT", help="Proofs of every task of this project.")
@click.option("--run", "run_id", metavar="RUN", help="With --project: only this run's.")
@click.option("--type", "proof_type", type=click.Choice(PROOF_TYPES), help="Only proofs of this type.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="Show at most this many.")
@json_option
@with_client
def list_proofs(client: CliClient, task_id: Optional[str], project_id: Optional[str], run_id: Optional[str],
                proof_type: Optional[str], limit: int, as_json: bool) -> None:
    """List proofs of a task or a project.

    Give --task for one task's proofs, or --project for the project's history (--run narrows it).
    """
    if bool(task_id) == bool(project_id):
        raise click.UsageError("give --task TASK or --project PROJECT (one of them)")
    if run_id and not project_id:
        raise click.UsageError("--run goes with --project")
    if task_id:
        items = client.collect(f"/tasks/{task_id}/proofs", limit, type=proof_type)
    else:
        items = client.collect(f"/projects/{project_id}/proofs", limit, type=proof_type, run_id=run_id)
    if as_json:
        output.print_json(items)
        return
    output.table(["PROOF", "TYPE", "FILE", "SIZE", "STAGE", "ITER", "STATUS", "TASK", "UPLOADED"],
                 [(p["id"], p.get("type"), p.get("filename"), p.get("size"), p.get("stage"), p.get("iteration"),
                   output.status_text(p.get("status")), p.get("task_id"), short_time(p.get("created_at")))
                  for p in items], empty="no proofs")


@proof.command("show")
@click.argument("proof_id", metavar="PROOF")
@json_option
@with_client
def show_proof(client: CliClient, proof_id: str, as_json: bool) -> None:
    """Show a proof's record.

    Its type, file name, size, SHA-256, stage and iteration, and where it is stored.
    """
    found = client.get(f"/proofs/{proof_id}")
    if as_json:
        output.print_json(found)
        return
    render_proof(found)


def render_proof(found: dict[str, Any]) -> None:
    output.details([("proof", found["id"]), ("status", output.status_text(found.get("status"))),
                    ("type", found.get("type")), ("file", found.get("filename")), ("size", found.get("size")),
                    ("content type", found.get("content_type")), ("sha256", found.get("sha256")),
                    ("task", found.get("task_id")), ("run", found.get("run_id")),
                    ("stage", f"{found.get('stage')} (iteration {found.get('iteration')})"),
                    ("stored at", found.get("s3_key")),
                    ("uploaded", f"{short_time(found.get('created_at'))} by {found.get('uploaded_by') or '-'}")])


@proof.command("get")
@click.argument("proof_id", metavar="PROOF")
@click.option("-o", "--output", "destination", metavar="FILE",
              help="Where to save it ('-' for standard output; default: its file name, here).")
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@with_client
def get_proof(client: CliClient, proof_id: str, destination: Optional[str], force: bool) -> None:
    """Download a proof's file and check its SHA-256.

    Follows the API's short-lived redirect to storage; the bytes must match the recorded
    checksum, or nothing is written and the command fails.
    """
    record = client.get(f"/proofs/{proof_id}")
    data = transfer.download(client.location(f"/proofs/{proof_id}/download"))
    if record.get("sha256") and transfer.file_digest(data) != record["sha256"]:
        raise CliError(f"the downloaded bytes of {proof_id} do not match its recorded sha256; nothing was saved")
    if destination == "-":
        sys.stdout.buffer.write(data) if hasattr(sys.stdout, "buffer") else sys.stdout.write(data.decode())
        sys.stdout.flush()
        return
    target = Path(destination) if destination else Path(proof_filename(Path(record.get("filename") or proof_id).name))
    if target.exists() and not force:
        raise CliError(f"{target} exists; pass --force to overwrite it, or -o another name", ExitCode.USAGE)
    target.write_bytes(data)
    output.line(f"Saved {proof_id} to {target} ({len(data)} bytes, sha256 verified)", "green")
