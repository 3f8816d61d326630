"""The lab's journal: every object is written down before it is made.

``netlab down`` replays this journal backwards, so it removes exactly what
the lab made -- after a clean exit, an exception or a SIGKILL -- and never
anything it did not record.  Objects are appended, one JSON line each, to
``objects.jsonl`` (O(1) per object, and a torn last line is ignored); the
lab's metadata lives in ``state.json``, replaced atomically (write + rename).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from netlab.paths import lab_dir, run_root, state_path

OBJECTS_FILE = "objects.jsonl"

ObjectKind = Literal["netns", "link", "process", "file", "dir"]


@dataclass(frozen=True)
class Recorded:
    """One object the lab made (or is about to make)."""

    kind: ObjectKind
    name: str
    netns: str | None = None
    pid_start: float | None = None  # a process's start time, so a reused pid is never killed


@dataclass
class LabState:
    lab: str
    owner_pid: int
    created: float
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
        journal = cls(LabState(lab=lab, owner_pid=os.getpid(), created=time.time(), **fields))
        journal.save()
        return journal

    def record(self, kind: ObjectKind, name: str, netns: str | None = None,
               pid_start: float | None = None) -> None:
        entry = Recorded(kind, name, netns, pid_start)
        self.state.objects.append(entry)
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
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state.to_json(), separators=(",", ":")))
        os.replace(tmp, self.path)


def objects_path(lab: str) -> Path:
    return lab_dir(lab) / OBJECTS_FILE


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
    return objects


def load(lab: str) -> LabState | None:
    try:
        data = json.loads(state_path(lab).read_text())
    except FileNotFoundError:
        return None
    return LabState.from_json(data, _read_objects(lab))


def all_labs() -> list[LabState]:
    root = run_root()
    if not root.is_dir():
        return []
    labs: list[LabState] = []
    for entry in sorted(root.iterdir()):
        state = load(entry.name) if entry.is_dir() else None
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
