"""A LangGraph checkpointer (``BaseCheckpointSaver``) that keeps a graph's checkpoints and pending
writes in a Baton task's state, through the API and with the job's credentials, so that a LangGraph
agent re-dispatched after a crash, or run again after a loop-back, resumes where it stopped.

Optional at run time: it needs ``langgraph-checkpoint`` (and nothing else beyond the standard
library and :mod:`chalicelib.agent`'s client). Baton's functions never import this module.

Layout. Every name lives under ``{prefix}/{thread}/`` (``{thread}`` is the thread id itself when it
is short and made of name characters, else ``_h`` and 40 hex digits of its SHA-256):

* ``log/NNNNN``: a page of entries, ``{"format": 1, "thread_id", "entries": [...]}``. An entry is a
  checkpoint (``kind: "checkpoint"``, its namespace, id, parent id, metadata and the checkpoint with
  its channel values) or one pending write (``kind: "write"``, the checkpoint it belongs to, task id,
  task path, index, channel, value). Values are the saver's ``serde`` output, ``[type, base64]``.
  New entries go to a page with room (``page_bytes``, 64 KB by default), else to a new page.
* ``blob/NNNNN``: one payload too large for a page (a big checkpoint, a big write), referred to by
  its entry as ``{"blob", "type", "size", "sha256"}``. Up to the API's inline limit it is a JSON value;
  beyond, its raw bytes go to S3 through the presigned upload and are checked on the way back.

Why pages and not one name per checkpoint: a task keeps at most 200 names and 5,000 versions, ever
(deleting a name frees neither). Small checkpoints and their writes share pages, so names grow with
the bytes kept, not with the steps taken; a deleted page's number is used again (writing a deleted
name costs no new name). Every ``put`` and ``put_writes`` is one version (two for a payload that
needs a blob), so a task holds some 2,000 super-steps of one graph; ``prune`` and
``delete_thread`` give names back, never versions.

Consistency. Each page is written with ``expected_version`` (the version read); on
``version_conflict`` the thread is read again and the change planned anew, so two processes never
lose each other's entries. Reads (``get_tuple``, ``list``) list the thread's pages first (one call)
and fetch only pages whose version changed. Calls from several threads of one process are
serialised by a lock; the async methods run the sync ones in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import re
import threading
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote, urlencode

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (WRITES_IDX_MAP, BaseCheckpointSaver, ChannelVersions, Checkpoint,
                                       CheckpointMetadata, CheckpointTuple, SerializerProtocol, get_checkpoint_id,
                                       get_checkpoint_metadata, writes_sort_key)

from . import transfer as default_transfer
from .client import ApiError, BatonClient

FORMAT = 1
PAGE_BYTES = 64 * 1024
# The API keeps a value inline up to 200 KB of compact JSON; a page or blob stays below this.
INLINE_BYTES = 190 * 1024
ATTEMPTS = 8
LIST_LIMIT = 200
SAFE_THREAD = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")
SAFE_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}){0,3}")


class CheckpointStoreError(Exception):
    """The task state holds something this saver cannot read back (another format, a payload whose
    checksum does not match, a thread id that does not match its name)."""


def thread_key(thread_id: str) -> str:
    """The thread's folder: the id itself when it is a safe name, else a hash (no id is both)."""
    if SAFE_THREAD.fullmatch(thread_id) and ".." not in thread_id and not thread_id.startswith("_h"):
        return thread_id
    return "_h" + hashlib.sha256(thread_id.encode()).hexdigest()[:40]


def size_of(value: Any) -> int:
    """Bytes of the value as sent and as stored (ASCII-escaped compact JSON is never smaller)."""
    return len(json.dumps(value, separators=(",", ":")))


def number_of(name: str) -> int:
    return int(name.rsplit("/", 1)[1])


def smallest_free(taken: set[int]) -> int:
    number = 1
    while number in taken:
        number += 1
    return number


def is_conflict(error: ApiError) -> bool:
    return error.status == 409 and error.code == "version_conflict"


@dataclass
class Page:
    name: str
    version: int
    entries: list[dict[str, Any]]


@dataclass
class Thread:
    key: str
    thread_id: Optional[str]
    pages: dict[str, Page] = field(default_factory=dict)
    tail: Optional[str] = None          # the page entries were last added to

    def ordered_entries(self) -> Iterator[tuple[Page, dict[str, Any]]]:
        for name in sorted(self.pages):
            page = self.pages[name]
            for entry in page.entries:
                yield page, entry

    def checkpoints(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(namespace, checkpoint id) -> its entry (the first one, should a crash have left two)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for _, entry in self.ordered_entries():
            if entry["kind"] == "checkpoint":
                found.setdefault((entry["ns"], entry["id"]), entry)
        return found

    def writes(self, ns: str, checkpoint_id: str) -> list[dict[str, Any]]:
        """The checkpoint's pending writes, one per (task id, index), in ``writes_sort_key`` order."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for _, entry in self.ordered_entries():
            if entry["kind"] == "write" and entry["ns"] == ns and entry["checkpoint_id"] == checkpoint_id:
                found.setdefault((entry["task_id"], entry["idx"]), entry)
        return sorted(found.values(), key=lambda e: writes_sort_key(e["task_path"], e["task_id"], e["idx"]))


def entry_key(entry: dict[str, Any]) -> tuple:
    if entry["kind"] == "checkpoint":
        return ("checkpoint", entry["ns"], entry["id"])
    return ("write", entry["ns"], entry["checkpoint_id"], entry["task_id"], entry["idx"])


def owner_of(entry: dict[str, Any]) -> tuple[str, str]:
    """The (namespace, checkpoint id) an entry belongs to."""
    return entry["ns"], entry["id"] if entry["kind"] == "checkpoint" else entry["checkpoint_id"]


def payload_field(entry: dict[str, Any]) -> str:
    return "checkpoint" if entry["kind"] == "checkpoint" else "value"


def blob_of(entry: dict[str, Any]) -> Optional[str]:
    payload = entry[payload_field(entry)]
    return payload.get("blob") if isinstance(payload, dict) else None


class TaskStateSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints and pending writes in the state of one Baton task.

    Parameters
    ----------
    client:
        A :class:`~chalicelib.agent.client.BatonClient` (or anything with its ``request(method, path,
        body)``) carrying the job's token, or an agent key bound to its claim (``for_claim``).
    task_id:
        The task whose state holds the checkpoints.
    prefix:
        The folder of task state names this saver uses (``langgraph``).
    page_bytes:
        How full a page gets before a new one starts (at most half of the API's inline limit).
    serde:
        LangGraph's serializer (``JsonPlusSerializer`` by default).
    transfer:
        What moves a blob's bytes to and from S3 (``upload_presigned_post``, ``download``):
        :mod:`chalicelib.agent.transfer` by default.
    """

    def __init__(self, client: Any, task_id: str, *, prefix: str = "langgraph", page_bytes: int = PAGE_BYTES,
                 serde: Optional[SerializerProtocol] = None, transfer: Any = default_transfer):
        super().__init__(serde=serde)
        if not SAFE_PREFIX.fullmatch(prefix) or ".." in prefix:
            raise ValueError(f"prefix must be up to four name segments of A-Z a-z 0-9 . _ -, not {prefix!r}")
        if not 1024 <= page_bytes <= INLINE_BYTES // 2:
            raise ValueError(f"page_bytes must be between 1024 and {INLINE_BYTES // 2}")
        self.client = client
        self.task_id = task_id
        self.prefix = prefix
        self.page_bytes = page_bytes
        self.transfer = transfer
        self._threads: dict[str, Thread] = {}
        self._lock = threading.RLock()

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None, **options: Any) -> "TaskStateSaver":
        """A saver for the task the environment names (``BATON_TASK_ID``) and the way to its state:
        inside a job run by Baton's runner, its state proxy (``BATON_STATE_URL`` and
        ``BATON_STATE_TOKEN``, see :mod:`chalicelib.agent.state_proxy`); elsewhere ``BATON_API_URL``,
        ``BATON_API_KEY`` (a job token, or an agent key) and ``BATON_CLAIM`` (the claim an agent key
        works under; a job token needs none)."""
        environ = os.environ if environ is None else environ
        if environ.get("BATON_STATE_URL") and environ.get("BATON_STATE_TOKEN") and environ.get("BATON_TASK_ID"):
            return cls(BatonClient(environ["BATON_STATE_URL"], environ["BATON_STATE_TOKEN"]), environ["BATON_TASK_ID"],
                       **options)
        missing = [n for n in ("BATON_API_URL", "BATON_API_KEY", "BATON_TASK_ID") if not environ.get(n)]
        if missing:
            raise ValueError(f"set {', '.join(missing)} to keep LangGraph checkpoints in the task's state")
        client = BatonClient(environ["BATON_API_URL"], environ["BATON_API_KEY"], claim_id=environ.get("BATON_CLAIM"))
        return cls(client, environ["BATON_TASK_ID"], **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task_id={self.task_id!r}, prefix={self.prefix!r})"

    # ---- the API

    def _state_path(self, name: Optional[str] = None, suffix: str = "") -> str:
        base = f"/tasks/{quote(self.task_id, safe='')}/state"
        return base if name is None else f"{base}/{quote(name, safe='')}{suffix}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self.client.request(method, path, body)[1]

    def _names(self, prefix: str) -> dict[str, int]:
        """Every live name under ``prefix`` with its version."""
        names: dict[str, int] = {}
        cursor: Optional[str] = None
        while True:
            query = {"prefix": prefix, "limit": str(LIST_LIMIT), **({"cursor": cursor} if cursor else {})}
            page = self._call("GET", self._state_path() + "?" + urlencode(query))
            names.update({item["name"]: int(item["version"]) for item in page["items"]})
            cursor = page.get("next_cursor")
            if not cursor:
                return names

    def _read(self, name: str) -> Optional[dict[str, Any]]:
        try:
            return self._call("GET", self._state_path(name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def _write(self, name: str, value: Any, expected_version: int) -> int:
        return int(self._call("PUT", self._state_path(name), {"value": value,
                                                               "expected_version": expected_version})["version"])

    def _remove(self, name: str, expected_version: Optional[int] = None) -> None:
        suffix = "" if expected_version is None else f"?expected_version={expected_version}"
        try:
            self._call("DELETE", self._state_path(name, suffix))
        except ApiError as error:
            if error.status != 404:
                raise

    # ---- payloads

    def _dump(self, value: Any) -> list[str]:
        type_, data = self.serde.dumps_typed(value)
        return [type_, base64.b64encode(data).decode("ascii")]

    def _load(self, payload: Any) -> Any:
        if isinstance(payload, dict):
            return self.serde.loads_typed((payload["type"], self._read_blob(payload)))
        type_, data = payload
        return self.serde.loads_typed((type_, base64.b64decode(data)))

    def _read_blob(self, ref: dict[str, Any]) -> bytes:
        stored = self._read(ref["blob"])
        if stored is None:
            raise CheckpointStoreError(f"task {self.task_id} has lost the state {ref['blob']!r} a checkpoint refers to")
        if stored.get("value") is not None:
            data = base64.b64decode(stored["value"]["data"])
        else:
            data = self.transfer.download(stored["download_url"])
        if hashlib.sha256(data).hexdigest() != ref["sha256"]:
            raise CheckpointStoreError(f"the state {ref['blob']!r} of task {self.task_id} is not the bytes written")
        return data

    def _write_blob(self, key: str, type_: str, data: bytes) -> dict[str, Any]:
        """Store a payload under a free ``blob/`` number of the thread; its reference."""
        folder = f"{self.prefix}/{key}/blob/"
        digest = hashlib.sha256(data).hexdigest()
        inline = {"format": FORMAT, "type": type_, "data": base64.b64encode(data).decode("ascii")}
        for attempt in range(ATTEMPTS):
            name = f"{folder}{smallest_free({number_of(n) for n in self._names(folder)}):05d}"
            try:
                if size_of(inline) <= INLINE_BYTES:
                    self._write(name, inline, 0)
                else:
                    asked = self._call("POST", self._state_path(name, "/upload"), {
                        "size": len(data), "sha256": digest, "content_type": "application/octet-stream",
                        "expected_version": 0})
                    form = asked["upload"]
                    self.transfer.upload_presigned_post(form["url"], form["fields"], name.replace("/", "_"),
                                                        "application/octet-stream", data)
                    self._call("POST", self._state_path(name, "/confirm"), {})
                return {"blob": name, "type": type_, "size": len(data), "sha256": digest}
            except ApiError as error:
                if not is_conflict(error) or attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _fit(self, key: str, entry: dict[str, Any]) -> dict[str, Any]:
        """The entry as it goes into a page: its payload moved to a blob when it would not fit one."""
        if size_of(entry) <= self.page_bytes:
            return entry
        name = payload_field(entry)
        type_, data = entry[name]
        entry = {**entry, name: self._write_blob(key, type_, base64.b64decode(data))}
        if size_of(entry) > INLINE_BYTES - 1024:
            raise ValueError(f"a {entry['kind']} entry of {size_of(entry)} bytes without its payload is too large "
                             "for the task's state (its metadata or ids are too big)")
        return entry

    # ---- threads and pages

    def _refresh(self, key: str, thread_id: Optional[str] = None) -> Thread:
        """The thread as stored now: its pages listed, those whose version changed read again."""
        listed = self._names(f"{self.prefix}/{key}/log/")
        cached = self._threads.get(key) or Thread(key, thread_id)
        thread = Thread(key, thread_id or cached.thread_id, tail=cached.tail)
        for name, version in sorted(listed.items()):
            known = cached.pages.get(name)
            if known is not None and known.version == version:
                thread.pages[name] = known
                continue
            stored = self._read(name)
            if stored is None:
                continue
            value = stored.get("value")
            if not isinstance(value, dict) or value.get("format") != FORMAT:
                raise CheckpointStoreError(f"state {name!r} of task {self.task_id} is not a checkpoint page of "
                                           f"format {FORMAT}")
            if thread.thread_id is None:
                thread.thread_id = value["thread_id"]
            elif value["thread_id"] != thread.thread_id:
                raise CheckpointStoreError(f"state {name!r} of task {self.task_id} belongs to thread "
                                           f"{value['thread_id']!r}, not {thread.thread_id!r}")
            thread.pages[name] = Page(name, int(stored["version"]), value["entries"])
        self._threads[key] = thread
        return thread

    def _thread(self, thread_id: str) -> Thread:
        """The thread from memory when known (writes find out about others by their conflicts)."""
        key = thread_key(thread_id)
        return self._threads.get(key) or self._refresh(key, thread_id)

    def _page_body(self, thread: Thread, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {"format": FORMAT, "thread_id": thread.thread_id, "entries": entries}

    def _commit(self, thread: Thread, pages: dict[str, list[dict[str, Any]]], changed: set[str]) -> None:
        """Write the changed pages (delete those left empty), each conditioned on the version read."""
        for name in sorted(changed):
            known = thread.pages.get(name)
            entries = pages[name]
            if not entries:
                if known is not None:
                    self._remove(name, known.version)
                    del thread.pages[name]
                continue
            version = self._write(name, self._page_body(thread, entries), known.version if known else 0)
            thread.pages[name] = Page(name, version, entries)

    def _change(self, thread_id: str, plan: Callable[[Thread], tuple[dict[str, list[dict[str, Any]]], set[str]]]) -> Thread:
        """Apply ``plan`` (the thread → the new entries of each page and which changed), read the
        thread again and plan anew after a version conflict."""
        key = thread_key(thread_id)
        thread = self._thread(thread_id)
        for attempt in range(ATTEMPTS):
            pages, changed = plan(thread)
            try:
                self._commit(thread, pages, changed)
                return thread
            except ApiError as error:
                if not is_conflict(error) or attempt == ATTEMPTS - 1:
                    raise
                thread = self._refresh(key, thread_id)
        raise AssertionError("unreachable")

    def _save(self, thread_id: str, entries: list[dict[str, Any]], *, overwrite: Callable[[dict[str, Any]], bool]) -> None:
        """Add entries to the thread's pages; an entry whose key is stored already replaces it when
        ``overwrite(entry)``, else is left out (a write stored twice stays one). Blobs no longer
        referred to (replaced, or written for an entry left out) are removed afterwards."""
        unused_blobs: list[str] = []

        def plan(thread: Thread) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
            pages = {name: list(page.entries) for name, page in thread.pages.items()}
            where = {entry_key(e): (name, i) for name, es in pages.items() for i, e in enumerate(es)}
            sizes: dict[str, int] = {}
            changed: set[str] = set()
            unused_blobs.clear()
            for entry in entries:
                known = where.get(entry_key(entry))
                if known is not None:
                    name, index = known
                    stored = pages[name][index]
                    # After a conflict the stored entry may be this very one (a page written before
                    # the conflict): its blob is in use either way.
                    if overwrite(entry):
                        if blob_of(stored) and blob_of(stored) != blob_of(entry):
                            unused_blobs.append(blob_of(stored))
                        pages[name][index] = entry
                        sizes.pop(name, None)
                        changed.add(name)
                    elif blob_of(entry) and blob_of(entry) != blob_of(stored):
                        unused_blobs.append(blob_of(entry))
                    continue
                name = self._room_for(thread, pages, sizes, entry)
                pages[name].append(entry)
                where[entry_key(entry)] = (name, len(pages[name]) - 1)
                changed.add(name)
            return pages, changed

        self._change(thread_id, plan)
        for name in unused_blobs:
            self._remove(name)

    def _room_for(self, thread: Thread, pages: dict[str, list[dict[str, Any]]], sizes: dict[str, int],
                  entry: dict[str, Any]) -> str:
        """The page an entry goes to: the last one written to or the highest-numbered one, when it
        has room; else a new page at the smallest free number (a deleted page's name comes back)."""
        need = size_of(entry) + 1
        for name in dict.fromkeys(n for n in (thread.tail, max(pages, default=None)) if n in pages):
            if name not in sizes:
                sizes[name] = size_of(self._page_body(thread, pages[name]))
            if sizes[name] + need <= self.page_bytes:
                sizes[name] += need
                thread.tail = name
                return name
        name = f"{self.prefix}/{thread.key}/log/{smallest_free({number_of(n) for n in pages}):05d}"
        pages[name] = []
        sizes[name] = size_of(self._page_body(thread, [])) + need
        thread.tail = name
        return name

    def _drop(self, thread_id: str, doomed: Callable[[Thread], Callable[[dict[str, Any]], bool]]) -> None:
        """Remove the entries ``doomed(thread)`` picks, then the blobs they referred to."""
        dropped_blobs: list[str] = []

        def plan(thread: Thread) -> tuple[dict[str, list[dict[str, Any]]], set[str]]:
            picks = doomed(thread)
            pages, changed = {}, set()
            dropped_blobs.clear()
            for name, page in thread.pages.items():
                pages[name] = [e for e in page.entries if not picks(e)]
                if len(pages[name]) != len(page.entries):
                    changed.add(name)
                    dropped_blobs.extend(b for e in page.entries if picks(e) and (b := blob_of(e)))
            return pages, changed

        self._change(thread_id, plan)
        for name in dropped_blobs:
            self._remove(name)

    def _all_threads(self) -> list[Thread]:
        keys = {name.split("/")[-3] for name in self._names(f"{self.prefix}/") if name.split("/")[-2] == "log"}
        threads = [self._refresh(key) for key in sorted(keys)]
        return [t for t in threads if t.pages]

    # ---- tuples

    def _tuple(self, thread: Thread, entry: dict[str, Any], metadata: Optional[CheckpointMetadata] = None
               ) -> CheckpointTuple:
        ns, checkpoint_id, parent = entry["ns"], entry["id"], entry.get("parent")

        def config_of(cid: str) -> RunnableConfig:
            return {"configurable": {"thread_id": thread.thread_id, "checkpoint_ns": ns, "checkpoint_id": cid}}

        return CheckpointTuple(
            config=config_of(checkpoint_id),
            checkpoint=self._load(entry["checkpoint"]),
            metadata=metadata if metadata is not None else self._load(entry["metadata"]),
            parent_config=config_of(parent) if parent else None,
            pending_writes=[(w["task_id"], w["channel"], self._load(w["value"]))
                            for w in thread.writes(ns, checkpoint_id)])

    # ---- BaseCheckpointSaver

    def get_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        configurable = config["configurable"]
        thread_id, ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        with self._lock:
            thread = self._refresh(thread_key(thread_id), thread_id)
            found = {cid: e for (n, cid), e in thread.checkpoints().items() if n == ns}
            checkpoint_id = get_checkpoint_id(config) or max(found, default=None)
            entry = found.get(checkpoint_id) if checkpoint_id else None
            return self._tuple(thread, entry) if entry is not None else None

    def list(self, config: Optional[RunnableConfig], *, filter: Optional[dict[str, Any]] = None,
             before: Optional[RunnableConfig] = None, limit: Optional[int] = None) -> Iterator[CheckpointTuple]:
        configurable = (config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id")
        ns = configurable.get("checkpoint_ns")
        wanted_id = configurable.get("checkpoint_id")
        before_id = get_checkpoint_id(before) if before else None
        with self._lock:
            if thread_id is not None:
                threads = [self._refresh(thread_key(str(thread_id)), str(thread_id))]
            else:
                threads = self._all_threads()
            matches = []
            for thread in threads:
                for (entry_ns, cid), entry in thread.checkpoints().items():
                    if (ns is not None and entry_ns != ns) or (wanted_id and cid != wanted_id) \
                            or (before_id and cid >= before_id):
                        continue
                    metadata = self._load(entry["metadata"])
                    if filter and not all(metadata.get(k) == v for k, v in filter.items()):
                        continue
                    matches.append((cid, thread, entry, metadata))
        matches.sort(key=lambda m: m[0], reverse=True)
        if limit is not None:
            matches = matches[:max(limit, 0)]
        for _, thread, entry, metadata in matches:
            with self._lock:
                found = self._tuple(thread, entry, metadata)
            yield found

    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        configurable = config["configurable"]
        thread_id, ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        entry = {"kind": "checkpoint", "ns": ns, "id": checkpoint["id"], "parent": configurable.get("checkpoint_id"),
                 "metadata": self._dump(get_checkpoint_metadata(config, metadata)),
                 "checkpoint": self._dump(checkpoint)}
        with self._lock:
            self._save(thread_id, [self._fit(thread_key(thread_id), entry)], overwrite=lambda e: True)
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        configurable = config["configurable"]
        thread_id, ns = str(configurable["thread_id"]), configurable.get("checkpoint_ns", "")
        checkpoint_id = configurable["checkpoint_id"]
        with self._lock:
            key = thread_key(thread_id)
            entries = [self._fit(key, {"kind": "write", "ns": ns, "checkpoint_id": checkpoint_id, "task_id": task_id,
                                       "task_path": task_path, "idx": WRITES_IDX_MAP.get(channel, idx),
                                       "channel": channel, "value": self._dump(value)})
                       for idx, (channel, value) in enumerate(writes)]
            # A special write (error, interrupt, resume...) replaces its earlier self; a regular one is kept once.
            self._save(thread_id, entries, overwrite=lambda e: e["idx"] < 0)

    def delete_thread(self, thread_id: str) -> None:
        key = thread_key(str(thread_id))
        with self._lock:
            for name in self._names(f"{self.prefix}/{key}/"):
                self._remove(name)
            self._threads.pop(key, None)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Remove the checkpoints whose metadata names one of ``run_ids``, with their writes."""
        wanted = set(run_ids)
        if not wanted:
            return
        with self._lock:
            for thread in self._all_threads():
                def doomed(t: Thread) -> Callable[[dict[str, Any]], bool]:
                    owners = {k for k, e in t.checkpoints().items() if self._load(e["metadata"]).get("run_id") in wanted}
                    return lambda e: owner_of(e) in owners

                if any(self._load(e["metadata"]).get("run_id") in wanted for e in thread.checkpoints().values()):
                    self._drop(thread.thread_id, doomed)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread to another (entries the target has already
        are left as they are)."""
        source_id, target_id = str(source_thread_id), str(target_thread_id)
        with self._lock:
            source = self._refresh(thread_key(source_id), source_id)
            if not source.pages:
                return
            target = self._refresh(thread_key(target_id), target_id)
            present = {entry_key(e) for _, e in target.ordered_entries()}
            copies = []
            for _, entry in source.ordered_entries():
                if entry_key(entry) in present:
                    continue
                present.add(entry_key(entry))
                name = payload_field(entry)
                payload = entry[name]
                if isinstance(payload, dict):
                    payload = self._write_blob(target.key, payload["type"], self._read_blob(payload))
                copies.append({**entry, name: payload})
            self._save(target_id, copies, overwrite=lambda e: False)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint and its writes, nothing older
        (not for graphs with a ``DeltaChannel``: their values are rebuilt from older writes);
        ``delete``: remove the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: keep_latest or delete")
        with self._lock:
            for thread_id in map(str, thread_ids):
                if strategy == "delete":
                    self.delete_thread(thread_id)
                    continue

                def doomed(t: Thread) -> Callable[[dict[str, Any]], bool]:
                    newest: dict[str, str] = {}
                    for ns, cid in t.checkpoints():
                        newest[ns] = max(cid, newest.get(ns, cid))
                    keep = set(newest.items())
                    return lambda e: owner_of(e) not in keep

                if self._refresh(thread_key(thread_id), thread_id).pages:
                    self._drop(thread_id, doomed)

    def get_next_version(self, current: Optional[str], channel: None = None) -> str:
        """A version that sorts after ``current`` as a string: the counter zero-padded, then a random
        fraction so that two branches of a thread never mint the same version (the convention of
        LangGraph's persistent savers)."""
        if current is None:
            counter = 0
        elif isinstance(current, int):
            counter = current
        else:
            counter = int(str(current).split(".")[0])
        return f"{counter + 1:032}.{random.random():016}"  # nosec B311  # uniqueness, not secrecy

    # ---- async: the same methods in a worker thread (the API client is blocking)

    async def aget_tuple(self, config: RunnableConfig) -> Optional[CheckpointTuple]:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: Optional[RunnableConfig], *, filter: Optional[dict[str, Any]] = None,
                    before: Optional[RunnableConfig] = None, limit: Optional[int] = None
                    ) -> AsyncIterator[CheckpointTuple]:
        found = await asyncio.to_thread(lambda: [*self.list(config, filter=filter, before=before, limit=limit)])
        for item in found:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


__all__ = ["CheckpointStoreError", "TaskStateSaver", "thread_key"]
