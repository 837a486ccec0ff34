"""The local stack's snapshot on disk (chalicelib/local/snapshot.py), without AWS: values round-trip
exactly, files are private, a snapshot interrupted at any point (an error, a crash of the process,
a failure between its rename and the switch of CURRENT) leaves the previous one current and
loadable, and a snapshot that cannot be loaded is refused with the name of what is wrong."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib.local import snapshot as snapshots
from chalicelib.local.snapshot import ObjectVersion, SnapshotError, SnapshotWriter

ROOT = Path(__file__).resolve().parents[2]

ITEM = {"pk": {"S": "PROJECT#p"}, "sk": {"S": "META"}, "raw": {"B": b"\x00\x01\xfe\xff"},
        "blobs": {"BS": [b"\x00", b"zz"]}, "n": {"N": "12345678901234567890.0001"}, "ok": {"BOOL": True},
        "none": {"NULL": True}, "tags": {"SS": ["a", "b"]}, "sizes": {"NS": ["1", "2.5"]},
        "nested": {"M": {"list": {"L": [{"S": "x"}, {"B": b"\x02"}, {"M": {"deep": {"N": "-0"}}}]}}}}


def versions(*bodies: tuple[str, bytes]) -> list[ObjectVersion]:
    return [ObjectVersion({"key": key, "version_id": f"v{i}", "last_modified": "2026-11-30T10:00:00+00:00",
                           "delete_marker": False, "content_type": "image/png", "metadata": {"m": "1"},
                           "tags": {"t": "x"}}, (lambda data=data: io.BytesIO(data)))
            for i, (key, data) in enumerate(bodies)]


def write(state: Path, *, items: Any = (ITEM,), bodies: tuple = (("proofs/a.png", b"\x89PNG\x00"),),
          messages: Any = None, key: str = "bk_admin") -> Path:
    with SnapshotWriter(state) as writer:
        writer.table("baton-local", items)
        writer.table("baton-local-idempotency", [])
        writer.bucket("baton-local-proofs", versions(*bodies))
        writer.queue("baton-local-dispatch", messages if messages is not None else [
            {"body": '{"kind": "fill", "run_id": "run_1"}', "attributes": {
                "bin": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}, "s": {"DataType": "String", "StringValue": "v"}},
             "system": {"AWSTraceHeader": "Root=1"}, "sent_at": "1796032212000", "receive_count": 1}])
        writer.admin_key(key)
        return writer.commit({"prefix": "baton-local"})


def failing(rows: list[Any], after: int) -> Iterator[Any]:
    for index, row in enumerate(rows):
        if index == after:
            raise OSError("disk full (injected)")
        yield row


def test_a_snapshot_round_trips_items_objects_messages_and_the_admin_key_exactly(tmp_path):
    state = tmp_path / "state"
    path = write(state, bodies=(("proofs/a.png", b"\x89PNG\x00"), ("proofs/b.png", b"\x89PNG\x00"),
                                ("logs/c.txt", bytes(range(256)) * 5)))
    loaded = snapshots.load(state)
    assert loaded is not None and loaded.path == path
    assert loaded.manifest["format"] == snapshots.FORMAT
    assert list(loaded.items("baton-local")) == [ITEM]
    assert loaded.tables == {"baton-local": 1, "baton-local-idempotency": 0}
    rows = list(loaded.versions("baton-local-proofs"))
    assert [r["key"] for r in rows] == ["proofs/a.png", "proofs/b.png", "logs/c.txt"]
    assert rows[0]["blob"] == rows[1]["blob"]                 # the same content is stored once
    assert loaded.blob(rows[2]["blob"]).read_bytes() == bytes(range(256)) * 5
    assert rows[0]["content_type"] == "image/png" and rows[0]["metadata"] == {"m": "1"} and rows[0]["tags"] == {"t": "x"}
    assert len(list((path / "blobs").iterdir())) == 2
    [message] = loaded.messages("baton-local-dispatch")
    assert message["body"] == '{"kind": "fill", "run_id": "run_1"}'
    assert message["attributes"]["bin"] == {"DataType": "Binary", "BinaryValue": b"\x00\xff"}
    assert message["system"] == {"AWSTraceHeader": "Root=1"}
    assert loaded.admin_key == "bk_admin"


def test_the_state_is_readable_only_by_its_owner(tmp_path):
    state = tmp_path / "state"
    path = write(state)
    assert (state.stat().st_mode & 0o777) == 0o700
    for entry in [path, *path.rglob("*"), state / snapshots.CURRENT]:
        assert (entry.stat().st_mode & 0o777) == (0o700 if entry.is_dir() else 0o600), entry
    assert (path / snapshots.ADMIN_KEY).read_text() == "bk_admin"


def test_no_snapshot_yet_is_none(tmp_path):
    assert snapshots.load(tmp_path / "missing") is None
    (tmp_path / "empty").mkdir()
    assert snapshots.load(tmp_path / "empty") is None


def test_an_error_midway_leaves_the_previous_snapshot_current_and_nothing_behind(tmp_path):
    state = tmp_path / "state"
    first = write(state, key="bk_first")
    with pytest.raises(OSError, match="injected"):
        write(state, items=failing([ITEM] * 50, after=30), key="bk_second")
    assert snapshots.current_name(state) == first.name
    loaded = snapshots.load(state)
    assert loaded.path == first and loaded.admin_key == "bk_first" and list(loaded.items("baton-local")) == [ITEM]
    assert sorted(p.name for p in state.iterdir()) == sorted([snapshots.CURRENT, first.name])


def test_a_body_that_fails_to_read_midway_leaves_the_previous_snapshot(tmp_path):
    state = tmp_path / "state"
    first = write(state)

    class Broken(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            if self.tell() > 0:
                raise ConnectionError("moto went away (injected)")
            return super().read(4)

    broken = ObjectVersion({"key": "k", "version_id": "v", "delete_marker": False}, lambda: Broken(b"0123456789"))
    with pytest.raises(ConnectionError), SnapshotWriter(state) as writer:
        writer.table("baton-local", [ITEM])
        writer.bucket("baton-local-proofs", [broken])
        writer.commit()
    assert snapshots.load(state).path == first


CRASH = textwrap.dedent("""
    import io, os, sys
    from pathlib import Path
    from chalicelib.local.snapshot import ObjectVersion, SnapshotWriter

    class Crash(io.BytesIO):
        def read(self, size=-1):
            os._exit(9)          # the process dies in the middle of the bucket: no cleanup runs

    with SnapshotWriter(Path(sys.argv[1])) as writer:
        writer.table("baton-local", [{"pk": {"S": "new"}, "sk": {"S": "new"}}] * 1000)
        writer.bucket("baton-local-proofs", [ObjectVersion({"key": "k", "version_id": "v"}, lambda: Crash())])
        writer.commit()
""")


def test_a_crash_of_the_process_midway_leaves_the_previous_snapshot_and_the_next_save_cleans_up(tmp_path):
    state = tmp_path / "state"
    first = write(state)
    crashed = subprocess.run([sys.executable, "-c", CRASH, str(state)], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert crashed.returncode == 9, crashed.stderr
    leftovers = [p for p in state.iterdir() if p.name.startswith(snapshots.TMP_PREFIX)]
    assert leftovers and any((p / "tables" / "baton-local.jsonl").exists() for p in leftovers)
    loaded = snapshots.load(state)
    assert loaded.path == first and list(loaded.items("baton-local")) == [ITEM]
    second = write(state, key="bk_second")
    assert sorted(p.name for p in state.iterdir()) == sorted([snapshots.CURRENT, first.name, second.name])


def test_a_failure_between_the_rename_and_the_switch_of_current_keeps_the_previous(tmp_path, monkeypatch):
    state = tmp_path / "state"
    first = write(state)
    real_replace = os.replace

    def replace(source: Any, target: Any) -> None:
        if Path(target).name == snapshots.CURRENT:
            raise OSError("power cut (injected)")
        real_replace(source, target)

    monkeypatch.setattr(snapshots.os, "replace", replace)
    with pytest.raises(OSError, match="power cut"):
        write(state, key="bk_second")
    monkeypatch.undo()
    loaded = snapshots.load(state)
    assert loaded.path == first and loaded.admin_key == "bk_admin"
    third = write(state, key="bk_third")    # the orphaned snapshot is removed, the previous kept
    assert sorted(p.name for p in state.iterdir()) == sorted([snapshots.CURRENT, first.name, third.name])


def test_the_previous_snapshot_is_kept_and_older_ones_removed(tmp_path):
    state = tmp_path / "state"
    names = [write(state, key=f"bk_{i}").name for i in range(3)]
    assert sorted(p.name for p in state.iterdir()) == sorted([snapshots.CURRENT, names[1], names[2]])
    assert snapshots.load(state).admin_key == "bk_2"


def test_a_snapshot_of_another_format_is_refused(tmp_path):
    state = tmp_path / "state"
    path = write(state)
    manifest = json.loads((path / snapshots.MANIFEST).read_text())
    for found, says in ((0, "an older version of Baton (format 0"), (snapshots.FORMAT + 1, "another version")):
        (path / snapshots.MANIFEST).write_text(json.dumps({**manifest, "format": found}))
        with pytest.raises(SnapshotError, match=r"cannot be restored") as refused:
            snapshots.load(state)
        assert says in str(refused.value) and f"reads format {snapshots.FORMAT}" in str(refused.value)


@pytest.mark.parametrize("damage, says", [
    (lambda p: (p / "tables" / "baton-local.jsonl").write_bytes(
        (p / "tables" / "baton-local.jsonl").read_bytes()[:-10]), "tables/baton-local.jsonl does not match its checksum"),
    (lambda p: next((p / "blobs").iterdir()).unlink(), "is missing"),
    (lambda p: (p / snapshots.MANIFEST).write_text("{not json"), "manifest.json cannot be read"),
    (lambda p: (p / snapshots.MANIFEST).write_text("{}"), "has no format field"),
    (lambda p: (p / snapshots.MANIFEST).unlink(), "manifest.json is missing"),
    (lambda p: (p.parent / snapshots.CURRENT).write_text("snapshot-20260101T000000Z-deadbeef\n"), "which is not there"),
    (lambda p: (p.parent / snapshots.CURRENT).write_text("../../etc\n"), "does not name a snapshot"),
], ids=["truncated table", "missing body", "manifest not json", "no format", "no manifest", "current dangling",
        "current elsewhere"])
def test_a_snapshot_that_cannot_be_loaded_says_what(tmp_path, damage, says):
    state = tmp_path / "state"
    damage(write(state))
    with pytest.raises(SnapshotError) as refused:
        snapshots.load(state)
    assert says in str(refused.value)


def test_a_bad_line_with_a_matching_checksum_is_refused_before_anything_is_restored(tmp_path):
    state = tmp_path / "state"
    path = write(state)
    table = path / "tables" / "baton-local.jsonl"
    table.write_text('{"pk": {"X": "what"}}\n')
    manifest = json.loads((path / snapshots.MANIFEST).read_text())
    digest, size = snapshots._file_digest(table)
    manifest["files"]["tables/baton-local.jsonl"] = {"sha256": digest, "bytes": size}
    (path / snapshots.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match=r"baton-local.jsonl, line 1: not a DynamoDB item"):
        snapshots.load(state)


def test_resource_names_cannot_leave_the_snapshot(tmp_path):
    with pytest.raises(SnapshotError, match="cannot be a file name"), SnapshotWriter(tmp_path / "state") as writer:
        writer.table("../escape", [])


def test_items_encode_to_dynamodb_json_and_back():
    encoded = snapshots.encode_item(ITEM)
    assert json.loads(json.dumps(encoded)) == encoded
    assert encoded["raw"] == {"B": "AAH+/w=="}
    assert snapshots.decode_item(encoded) == ITEM


def test_a_second_stack_on_the_same_state_is_refused_until_the_first_stops(tmp_path):
    state = tmp_path / "state"
    first = snapshots.StateLock(state).acquire()
    with pytest.raises(snapshots.StateInUse, match=rf"another local stack \(pid {os.getpid()}\) is using"):
        snapshots.StateLock(state).acquire()
    first.release()
    snapshots.StateLock(state).acquire().release()
    assert ((state / snapshots.LOCK).stat().st_mode & 0o777) == 0o600


def test_make_up_with_a_snapshot_it_cannot_load_says_why_and_starts_nothing(tmp_path, capsys):
    from chalicelib.local.stack import main

    state = tmp_path / "state"
    path = write(state)
    (path / "queues" / "baton-local-dispatch.jsonl").write_text("changed\n")
    assert main(["--state-dir", str(state)]) == 1
    err = capsys.readouterr().err
    assert "the saved state could not be loaded" in err and "baton-local-dispatch.jsonl does not match" in err
    assert "make up FRESH=1" in err and "baton up --fresh" in err
    assert snapshots.current_name(state) == path.name                    # left as it was
