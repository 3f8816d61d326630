"""The fine-tuning loop across machines, on Ray.

``netlab finetune CONFIG --ray ADDRESS`` keeps the learner in this process
(the Ray head's driver) and runs episodes through one :class:`LabRunner`
actor per alive node, pinned there (``NodeAffinitySchedulingStrategy``);
each actor runs its share of a round's episodes with a local
:class:`~netlab.learning.labs.LabPool` of ``parallel`` labs and returns
results and transitions by value (``.npy`` bytes), so nothing needs a
shared filesystem except the checkpoint, which is shipped to the actors
as bytes each round. ``ADDRESS`` is a cluster address (``ray://host:10001``,
``host:6379``, ``auto``), or ``local`` for a cluster started here
(``ray.init(num_cpus=...)``; what the tests use). Labs need root on every
node, as locally.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from netlab.agent.transitions import from_npy, to_npy
from netlab.errors import NetlabError
from netlab.learning.labs import EpisodeResult, EpisodeSpec, LabPool, Tick


def episode_payload(result: EpisodeResult) -> dict[str, Any]:
    data = result.to_json()
    data["transitions"] = to_npy(result.transitions) if result.transitions is not None else None
    return data


def episode_from_payload(data: dict[str, Any]) -> EpisodeResult:
    result = EpisodeResult.from_json(data)
    blob = data.get("transitions")
    if isinstance(blob, bytes):
        result.transitions = from_npy(blob)
    return result


class LabRunner:
    """One per node: runs episode specs in local labs (wrapped by ``ray.remote``)."""

    def __init__(self, parallel: int, lab_prefix: str) -> None:
        self.parallel = parallel
        self.lab_prefix = lab_prefix
        self.work = Path(tempfile.mkdtemp(prefix="netlab-ray-"))

    def node(self) -> dict[str, Any]:
        return {"host": os.uname().nodename, "pid": os.getpid(), "euid": os.geteuid()}

    def run(self, specs: list[dict[str, Any]], checkpoint: bytes | None) -> list[dict[str, Any]]:
        local = self.work / "policy.pth"
        if checkpoint is not None:
            local.write_bytes(checkpoint)
        episodes = []
        for data in specs:
            spec = EpisodeSpec.from_json(data)
            spec.directory = str(self.work / Path(spec.directory).name)
            if checkpoint is not None and spec.checkpoint is not None:
                spec.checkpoint = str(local)
            episodes.append(spec)
        results = LabPool(self.parallel, lab_prefix=self.lab_prefix).run(episodes)
        return [episode_payload(r) for r in results]


class RayLabPool:
    """:class:`LabPool`'s ``run`` over a Ray cluster: specs dealt round-robin to
    one :class:`LabRunner` per node (``tick`` is not supported: no mid-episode push)."""

    def __init__(self, address: str, parallel: int, *, lab_prefix: str = "ftr",
                 num_cpus: int = 2) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
        if not nodes:
            raise NetlabError("the Ray cluster has no alive node", where=f"--ray {address}",
                              fix="start it with `ray start --head` and join the workers")
        remote: Any = ray.remote(num_cpus=0)(LabRunner)
        self.runners: list[Any] = [
            remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                n["NodeID"], soft=False)).remote(parallel, f"{lab_prefix}{i}")
            for i, n in enumerate(nodes)]
        self.parallel = parallel

    def nodes(self) -> list[dict[str, Any]]:
        import ray

        return list(ray.get([r.node.remote() for r in self.runners]))

    def run(self, specs: Sequence[EpisodeSpec], tick: Tick | None = None) -> list[EpisodeResult]:
        import ray

        if tick is not None:
            raise NetlabError("push_every is not supported with --ray", where="push_every",
                              fix="leave push_every out: weights reach the agents each round")
        checkpoints = {s.checkpoint for s in specs if s.checkpoint is not None}
        if len(checkpoints) > 1:
            raise NetlabError("one round ships one checkpoint", where="RayLabPool.run",
                              fix="give every spec of a round the same checkpoint")
        blob = Path(next(iter(checkpoints))).read_bytes() if checkpoints else None
        shares: list[list[tuple[int, EpisodeSpec]]] = [[] for _ in self.runners]
        for i, spec in enumerate(specs):
            shares[i % len(self.runners)].append((i, spec))
        futures = [runner.run.remote([s.to_json() for _, s in share], blob)
                   for runner, share in zip(self.runners, shares, strict=True) if share]
        answers = ray.get(futures)
        out: dict[int, EpisodeResult] = {}
        for share, payloads in zip([s for s in shares if s], answers, strict=True):
            for (index, spec), payload in zip(share, payloads, strict=True):
                result = episode_from_payload(payload)
                result.spec = spec
                out[index] = result
        return [out[i] for i in range(len(specs))]

    def shutdown(self) -> None:
        import ray

        for runner in self.runners:
            ray.kill(runner)
        self.runners = []
