"""The lab's journal: every object is written down before it is made.

``netlab down`` replays this journal backwards, so it removes exactly what
the lab made -- after a clean exit, an exception or a SIGKILL -- and never
anything it did not record.  Objects are appended, one JSON line each, to
``objects.jsonl`` (O(1) per object, and a torn last line is ignored); the
lab's metadata lives in ``state.json``, replaced atomically (write + rename).

Once an object exists its kernel identity (a namespace's inode, an
interface's index) is appended as a second line for the same object;
teardown acts only on an object whose identity still matches, never on
one that merely has the recorded name.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from labcore.jsonfile import write_json_atomic
from netlab.errors import NetlabError
from netlab.paths import STATE_FILE, lab_dir, run_root, state_path

OBJECTS_FILE = "objects.jsonl"

ObjectKind = Literal["netns", "link", "process", "file", "dir"]


@dataclass(frozen=True)
class Recorded:
    """One object the lab made (or is about to make)."""

    kind: ObjectKind
    name: str
    netns: str | None = None
    pid_start: float | None = None  # a process's start time, so a reused pid is never killed
    ident: int | None = None  # kernel identity once made: netns inode, interface index

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.kind, self.name, self.netns)


@dataclass
class LabState:
    lab: str
    owner_pid: int
    created: float
    instance: str = ""  # random per ``up``: a process acts only on the instance it made
    owner_start: float | None = None  # the owner's start time, so a reused pid is not it
    owner_handles_down: bool = False  # a foreground owner that ends cleanly on DOWN_SIGNAL
    scenario_path: str | None = None
    subnet: str | None = None
    backend: str | None = None
    status: str = "building"
    objects: list[Recorded] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)  # netlab.lab.plan.plan_to_json

    @property
    def hosts(self) -> dict[str, Any]:
        hosts: dict[str, Any] = self.plan.get("hosts", {})
        return hosts

    @property
    def links(self) -> dict[str, Any]:
        links: dict[str, Any] = self.plan.get("links", {})
        return links

    def owner_alive(self) -> bool:
        """The process that made this instance still runs (pid and start time)."""
        if not pid_alive(self.owner_pid):
            return False
        try:
            owner = psutil.Process(self.owner_pid)
            if owner.status() == psutil.STATUS_ZOMBIE:
                return False  # exited, not yet reaped by its parent
            return self.owner_start is None or abs(owner.create_time() - self.owner_start) < 0.05
        except psutil.Error:
            return False

    @property
    def namespaces(self) -> list[str]:
        return [o.name for o in self.objects if o.kind == "netns"]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["objects"]  # journaled line by line in objects.jsonl
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], objects: list[Recorded]) -> LabState:
        return cls(
            lab=data["lab"],
            owner_pid=owner if isinstance(owner := data.get("owner_pid"), int) else 0,
            created=float(data.get("created", 0.0)),
            instance=str(data.get("instance", "")),
            owner_start=start if isinstance(start := data.get("owner_start"), float) else None,
            owner_handles_down=data.get("owner_handles_down") is True,
            scenario_path=data.get("scenario_path"),
            subnet=data.get("subnet"),
            backend=data.get("backend"),
            status=data.get("status", "unknown"),
            objects=objects,
            plan=data.get("plan", {}),
        )


class StateJournal:
    """Owns one lab's state files; ``record`` persists before returning."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.path = state_path(state.lab)
        self.objects_path = objects_path(state.lab)

    @classmethod
    def start(cls, lab: str, **fields: Any) -> StateJournal:
        lab_dir(lab).mkdir(parents=True, exist_ok=True)
        journal = cls(LabState(lab=lab, owner_pid=os.getpid(), created=time.time(),
                               instance=secrets.token_hex(8),
                               owner_start=psutil.Process().create_time(), **fields))
        journal.save()
        return journal

    @property
    def instance_dir(self) -> Path:
        """Files of this instance's processes (link and replay logs): a later
        lab of the same name never shares them, and an old ``up`` reading
        them after a ``down`` finds them gone rather than another lab's."""
        return self.path.parent / self.state.instance

    def record(self, kind: ObjectKind, name: str, netns: str | None = None,
               pid_start: float | None = None) -> None:
        entry = Recorded(kind, name, netns, pid_start)
        self.state.objects.append(entry)
        self._append(entry)

    def identify(self, kind: ObjectKind, name: str, netns: str | None, ident: int) -> None:
        """Journal the kernel identity of an object just made (see module doc)."""
        entry = Recorded(kind, name, netns, ident=ident)
        self.state.objects = _merge([*self.state.objects, entry])
        self._append(entry)

    def _append(self, entry: Recorded) -> None:
        line = json.dumps(asdict(entry), separators=(",", ":")) + "\n"
        fd = os.open(self.objects_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def set(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self.state, key, value)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.state.to_json(), compact=True)


def objects_path(lab: str) -> Path:
    return lab_dir(lab) / OBJECTS_FILE


def _merge(entries: list[Recorded]) -> list[Recorded]:
    """An identity line completes the earlier record of the same object."""
    merged: dict[tuple[str, str, str | None], Recorded] = {}
    for entry in entries:
        earlier = merged.get(entry.key)
        if earlier is not None and entry.ident is not None:
            merged[entry.key] = Recorded(earlier.kind, earlier.name, earlier.netns,
                                         earlier.pid_start, entry.ident)
        else:
            merged[entry.key] = entry
    return list(merged.values())


def _read_objects(lab: str) -> list[Recorded]:
    try:
        lines = objects_path(lab).read_text().splitlines()
    except FileNotFoundError:
        return []
    objects = []
    for line in lines:
        try:
            objects.append(Recorded(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line torn by a crash mid-write: its object was not made yet
    return _merge(objects)


class StateGarbled(NetlabError):
    """A state file that is not the JSON netlab writes (edited, or a full disk)."""


def load(lab: str) -> LabState | None:
    path = state_path(lab)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("lab"), str):
            raise ValueError("not a netlab state object")
        return LabState.from_json(data, _read_objects(lab))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise StateGarbled(
            f"the state file of lab '{lab}' is unreadable ({exc}); netlab does not know "
            "what the lab made, so it removes nothing of it",
            where=str(path),
            fix=f"remove what is left by hand ('ip netns list | grep nl-{lab}.', "
            f"'ip netns del NAME'), then 'rm -r {path.parent}'",
        ) from None


def lab_names() -> list[str]:
    """Every lab with a state file, readable or not."""
    root = run_root()
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir()
                  if not entry.name.startswith(".") and (entry / STATE_FILE).exists())


def all_labs() -> list[LabState]:
    """The labs whose state is readable (see ``lab_names`` for all)."""
    labs: list[LabState] = []
    for name in lab_names():
        try:
            state = load(name)
        except StateGarbled:
            continue
        if state is not None:
            labs.append(state)
    return labs


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists()
