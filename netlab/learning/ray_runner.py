"""Episodes across machines, on Ray.

``netlab finetune CONFIG --ray ADDRESS`` and ``netlab eval ... --ray ADDRESS``
keep the learner (or the evaluator) in this process, the Ray driver, and
run episodes through one :class:`LabRunner` actor per alive node, pinned
there (``NodeAffinitySchedulingStrategy``); with ``resource`` only nodes
that declare that custom resource (``ray start --resources``) run labs.
Each actor runs up to ``parallel`` labs at once, one episode per call.
Specs reach it without head paths: their files travel through the object
store (:mod:`netlab.learning.ray_assets`); results, transitions and the
episode's folder come back by value, into the folder the head gave the spec.

Episodes are dealt one at a time to whichever runner has a free lab, so a
slow node takes fewer. A runner that dies mid-episode (its worker process
or its whole node killed) is dropped, a new one is started on its node if
the node lives on, and its unfinished episodes run again elsewhere, up to
``attempts`` times each. ``ADDRESS`` is a cluster address (``host:6379``,
``auto``) or ``local`` for a one-node cluster started here. Labs need root
on every node, as locally.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil

from labcore.processes import wait_ended
from netlab.agent.transitions import from_npy, to_npy
from netlab.errors import NetlabError
from netlab.learning.labs import EpisodeResult, EpisodeSpec, LabPool, Tick
from netlab.learning.ray_assets import localised, pack, portable, unpack

WAIT_S = 1.0
#: A node whose runner was just lost gets no new one for this long: Ray needs a
#: moment to declare a killed node dead, and a runner pinned to it would never start.
LOST_GRACE_S = 5.0
START_TIMEOUT_S = 60.0  # a runner's first answer (importing netlab on a busy node)
#: How long ``shutdown`` waits for this machine's runner processes to exit after
#: ``ray.kill`` (asynchronous: the raylet ends the worker later, seconds later on a
#: loaded machine).
RUNNER_EXIT_TIMEOUT_S = 20.0


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
    """One per node: runs episodes in local labs, ``parallel`` at a time
    (wrapped by ``ray.remote`` with that many concurrent calls)."""

    def __init__(self, parallel: int, lab_prefix: str) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="netlab-ray-"))
        self.slots: queue.Queue[str] = queue.Queue()
        for slot in range(parallel):
            self.slots.put(f"{lab_prefix}{slot}")
        self.assets: dict[str, Path] = {}
        self.lock = threading.Lock()

    def node(self) -> dict[str, Any]:
        import ray

        return {"host": os.uname().nodename, "pid": os.getpid(), "euid": os.geteuid(),
                "node_id": ray.get_runtime_context().get_node_id(), "work": str(self.work)}

    def close(self) -> None:
        """Remove this runner's folder (assets, episodes not yet collected)."""
        shutil.rmtree(self.work, ignore_errors=True)

    def _fetch(self, refs: dict[str, Any]) -> None:
        import ray

        with self.lock:
            for key, ref in refs.items():
                if key not in self.assets:
                    path = self.work / "assets" / key
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(ray.get(ref))
                    self.assets[key] = path

    def run(self, data: dict[str, Any], refs: dict[str, Any]) -> dict[str, Any]:
        """One episode: its assets written here, its folder packed for the head."""
        import ray

        self._fetch(refs)
        spec = localised(data, self.assets, self.work / "episodes")
        slot = self.slots.get()
        try:
            [result] = LabPool(1, lab_prefix=slot).run([spec])
        finally:
            self.slots.put(slot)
        directory = Path(spec.directory)
        payload = episode_payload(result)
        payload["node"] = ray.get_runtime_context().get_node_id()
        payload["artefacts"] = pack(directory)
        payload["run_dir"] = (str(Path(result.run_dir).relative_to(directory))
                              if result.run_dir else None)
        shutil.rmtree(directory, ignore_errors=True)  # the head has it now
        return payload


def _actor_lost() -> tuple[type[BaseException], ...]:
    from ray import exceptions

    return (exceptions.RayActorError, exceptions.ActorUnschedulableError,
            exceptions.WorkerCrashedError, exceptions.NodeDiedError, exceptions.ObjectLostError,
            exceptions.OwnerDiedError)


class RayLabPool:
    """:class:`LabPool`'s ``run`` over a Ray cluster (see the module docstring;
    ``tick`` is not supported: no mid-episode push). A runner takes episodes
    only once it has answered, so none go to a node that cannot start one."""

    def __init__(self, address: str, parallel: int, *, lab_prefix: str = "ftr",
                 num_cpus: int = 2, resource: str | None = None, attempts: int = 2,
                 log: Callable[[str], object] | None = None) -> None:
        import ray

        if not ray.is_initialized():
            if address == "local":
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        if parallel < 1 or attempts < 1:
            raise NetlabError(f"parallel {parallel}, attempts {attempts}", where="RayLabPool",
                              fix="give 1 or more of each")
        if len(lab_prefix) > 7:
            raise NetlabError(f"lab prefix {lab_prefix!r} is over 7 characters",
                              where="RayLabPool", fix="use a shorter prefix (lab names: 12)")
        self.address = address
        self.parallel = parallel
        self.lab_prefix = lab_prefix
        self.resource = resource
        self.attempts = attempts
        self.log = log or (lambda text: None)
        self.runners: dict[str, Any] = {}  # node id -> a runner that answered
        self.info: dict[str, dict[str, Any]] = {}  # node id -> its runner's node()
        self.starting: dict[str, tuple[Any, Any]] = {}  # node id -> (runner, its node() ref)
        self.local_processes: list[psutil.Process] = []  # runners on this machine
        self.lost_at: dict[str, float] = {}  # node id -> when its last runner was lost
        self.made = 0
        self.reruns = 0  # episodes run again after their runner was lost
        self._remote: Any = ray.remote(LabRunner)
        self._assets: dict[str, Any] = {}  # key -> object ref, for this pool's life
        self._refresh()
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.starting and time.monotonic() < deadline:
            self._promote(WAIT_S)
        if not self.runners:
            what = f"with resource {resource!r}" if resource else "alive"
            raise NetlabError(f"no Ray node {what} started a lab runner",
                              where=f"--ray {address}",
                              fix="start the cluster with `ray start --head` and join the "
                                  "workers" + (f" with --resources '{{\"{resource}\": 1}}'"
                                               if resource else ""))

    def _eligible(self) -> list[str]:
        import ray

        return [n["NodeID"] for n in ray.nodes()  # type: ignore[no-untyped-call]
                if n.get("Alive") and (self.resource is None
                                       or n.get("Resources", {}).get(self.resource, 0) > 0)]

    def _refresh(self) -> None:
        """Start a runner on every eligible node that has none (new nodes, lost runners)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        now = time.monotonic()
        for node in self._eligible():
            if (node in self.runners or node in self.starting
                    or now - self.lost_at.get(node, -LOST_GRACE_S) < LOST_GRACE_S):
                continue
            prefix = f"{self.lab_prefix}{self.made % 100}"
            self.made += 1
            runner = self._remote.options(
                num_cpus=0, max_concurrency=self.parallel, max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
            ).remote(self.parallel, prefix)
            self.starting[node] = (runner, runner.node.remote())

    def _promote(self, timeout_s: float) -> None:
        """Runners that answered take episodes; those that cannot start are dropped."""
        import ray

        if not self.starting:
            return
        refs = {ref: node for node, (_, ref) in self.starting.items()}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        for ref in done:
            node = refs[ref]
            runner, _ = self.starting.pop(node)
            try:
                self.info[node] = info = ray.get(ref)
                self.runners[node] = runner
            except _actor_lost():
                self.lost_at[node] = time.monotonic()
                continue
            if info.get("host") == os.uname().nodename:
                with contextlib.suppress(psutil.Error):
                    self.local_processes.append(psutil.Process(int(info["pid"])))

    def nodes(self) -> list[dict[str, Any]]:
        return [self.info[node] for node in self.runners]

    def _ship(self, spec: EpisodeSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        import ray

        data, files = portable(spec)
        refs = {}
        for key, path in files.items():
            if key not in self._assets:
                self._assets[key] = ray.put(path.read_bytes())
            refs[key] = self._assets[key]
        return data, refs

    def run(self, specs: Sequence[EpisodeSpec], tick: Tick | None = None) -> list[EpisodeResult]:
        import ray

        if tick is not None:
            raise NetlabError("push_every is not supported with --ray", where="push_every",
                              fix="leave push_every out: weights reach the agents each round")
        shipped = [self._ship(s) for s in specs]
        pending = deque(range(len(specs)))
        tries = [0] * len(specs)
        busy: dict[str, int] = {}
        flying: dict[Any, tuple[str, int]] = {}
        out: dict[int, EpisodeResult] = {}
        lost = _actor_lost()
        while pending or flying:
            if pending:
                self._refresh()
                self._promote(0)
            for node, runner in list(self.runners.items()):
                while pending and busy.get(node, 0) < self.parallel:
                    index = pending.popleft()
                    tries[index] += 1
                    flying[runner.run.remote(*shipped[index])] = (node, index)
                    busy[node] = busy.get(node, 0) + 1
            if not flying:
                if not (self.starting or any(time.monotonic() - t < LOST_GRACE_S
                                             for t in self.lost_at.values())):
                    raise NetlabError("every Ray node that ran labs is gone",
                                      where=f"--ray {self.address}",
                                      fix="restart the workers; a resumed fine-tune picks up "
                                          "at its last round")
                self._promote(WAIT_S)
                continue
            done, _ = ray.wait(list(flying), num_returns=1, timeout=WAIT_S)
            for ref in done:
                node, index = flying.pop(ref)
                busy[node] -= 1
                try:
                    out[index] = self._received(specs[index], ray.get(ref))
                except lost as exc:
                    if self.runners.pop(node, None) is not None:
                        self.lost_at[node] = time.monotonic()
                    if tries[index] < self.attempts:
                        self.reruns += 1
                        pending.appendleft(index)
                        self.log(f"episode {specs[index].directory}: its runner on node "
                                 f"{node[:8]} was lost ({type(exc).__name__}); running it again")
                    else:
                        out[index] = EpisodeResult(specs[index], error=(
                            f"lost its Ray runner {tries[index]} times: "
                            f"{type(exc).__name__}: {str(exc)[:200]}"))
        return [out[i] for i in range(len(specs))]

    @staticmethod
    def _received(spec: EpisodeSpec, payload: dict[str, Any]) -> EpisodeResult:
        """The result with the worker's artefacts unpacked where the head wanted them."""
        directory = Path(spec.directory)
        shutil.rmtree(directory, ignore_errors=True)
        unpack(payload.pop("artefacts"), directory)
        result = episode_from_payload(payload)
        result.spec = spec
        result.node = payload.get("node")
        relative = payload.get("run_dir")
        result.run_dir = str(directory / relative) if relative else None
        return result

    def shutdown(self) -> None:
        import ray

        runners = [*self.runners.values(), *(r for r, _ in self.starting.values())]
        closing = [r.close.remote() for r in runners]
        with contextlib.suppress(*_actor_lost(), ray.exceptions.GetTimeoutError):
            ray.get(closing, timeout=30)
        for runner in runners:
            with contextlib.suppress(*_actor_lost()):
                ray.kill(runner)
        self.runners, self.starting = {}, {}
        self._assets = {}
        # Ray ends killed actors' processes asynchronously; a runner still dying
        # owns its labs, which the reaping below would leave alone.
        wait_ended(self.local_processes, RUNNER_EXIT_TIMEOUT_S)
        self.local_processes = []
        reap_orphaned_labs(self.lab_prefix)


def reap_orphaned_labs(prefix: str) -> list[str]:
    """Take down this machine's labs of this pool (named ``prefix``...) whose
    owning episode process is dead: a node killed mid-episode kills its runner
    and episode without their teardown.  A lab whose owner still runs is never
    touched.  Returns the names taken down."""
    from netlab.lab import lifecycle, state
    from netlab.paths import run_root

    reaped = []
    root = run_root()
    names = sorted(p.name for p in root.iterdir() if p.name.startswith(prefix)) \
        if root.is_dir() else []
    for name in names:
        with contextlib.suppress(NetlabError, OSError, ValueError):
            journaled = state.load(name)
            # No state: a folder an up killed before its journal began (down removes
            # only such a folder); else only an instance whose owner is gone.
            if journaled is None or not journaled.owner_alive():
                lifecycle.down(name)
                reaped.append(name)
    return reaped

