"""What crosses between the head and a Ray worker for one episode.

A worker need not share the head's disk. Before a spec leaves the head,
every file it names (the policy checkpoint, an environment's trace file, a
scenario file and the traces and checkpoints that scenario names) becomes
an *asset*: its bytes go into Ray's object store once, under a key made of
its content digest and name, and the spec names ``asset:KEY`` instead of a
head path. The worker writes each asset once into its own folder and points
the spec there (:func:`localised`). On the way back the episode's folder
(its ``results.json``, logs and plots) comes as a tarball
(:func:`pack`/:func:`unpack`) into the folder the head gave the spec.
"""

from __future__ import annotations

import functools
import hashlib
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from netlab.learning.labs import EpisodeSpec
from netlab.learning.scenario_file import ScenarioFile
from netlab.learning.scenario_set import EnvConfig

ASSET = "asset:"
#: Files above this stay on the worker (named in the tarball's manifest):
#: a packet capture can be large, and results must still come back.
MAX_ARTEFACT_FILE_BYTES = 32 << 20
MANIFEST = "artefacts-left-on-worker.txt"


@functools.lru_cache(maxsize=1024)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]


def asset_key(path: Path) -> str:
    """Content digest and name: the same file ships once, a changed one again
    (read once per version of the file, however many specs name it)."""
    stat = path.stat()
    return f"{_digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)}-{path.name}"


def episode_folder(directory: str) -> str:
    """A worker-side folder name for a head folder: its last two parts and a digest
    of the whole (curriculum folders end alike: ``gap-001-0/policy``)."""
    path = Path(directory)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{path.parent.name}-{path.name}-{digest}"


def portable(spec: EpisodeSpec) -> tuple[dict[str, Any], dict[str, Path]]:
    """The spec as JSON with no head path in it, and the files its asset keys name."""
    files: dict[str, Path] = {}

    def ship(path: str | Path) -> str:
        local = Path(path)
        key = asset_key(local)
        files[key] = local
        return ASSET + key

    data = spec.to_json()
    data["directory"] = episode_folder(spec.directory)
    if spec.checkpoint is not None:
        data["checkpoint"] = ship(spec.checkpoint)
    env = spec.env
    if isinstance(env, EnvConfig) and env.trace is not None and Path(env.trace).is_file():
        data["env"]["trace"] = ship(env.trace)
    if isinstance(env, ScenarioFile):
        base = Path(env.path).parent
        data["env"]["scenario_file"] = ship(env.path)
        data["env"]["files"] = {written: ship(base / Path(written).expanduser())
                                for written in env.referenced()}
    return data, files


def _replace(value: Any, local: Mapping[str, Path]) -> Any:
    if isinstance(value, str) and value.startswith(ASSET):
        return str(local[value[len(ASSET):]])
    if isinstance(value, dict):
        return {k: _replace(v, local) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, local) for v in value]
    return value


def localised(data: Mapping[str, Any], local: Mapping[str, Path], work: Path) -> EpisodeSpec:
    """The worker's spec: assets at their local copies, the folder under ``work``."""
    values = _replace(dict(data), local)
    values["directory"] = str(work / str(data["directory"]))
    return EpisodeSpec.from_json(values)


def pack(directory: Path) -> bytes:
    """The episode folder as a gzipped tarball (sockets and large files left out)."""
    buffer = io.BytesIO()
    skipped: list[str] = []
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            if path.stat().st_size > MAX_ARTEFACT_FILE_BYTES:
                skipped.append(str(path.relative_to(directory)))
                continue
            archive.add(path, arcname=str(path.relative_to(directory)), recursive=False)
        if skipped:
            text = ("over 32 MiB, left on the worker:\n" + "\n".join(skipped) + "\n").encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


def unpack(blob: bytes, directory: Path) -> None:
    """Unpack a worker's tarball into ``directory`` (no path may leave it)."""
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as archive:
        archive.extractall(directory, filter="data")
