"""A Gymnasium environment over the real lab: OpenNetLab bandwidth estimation.

``reset()`` tears down the previous episode's lab, samples one environment
from the set (Genet-style configs, :mod:`netlab.learning.scenario_set`),
builds its lab and starts its RTC flow, whose receiver asks *this* process
for every estimate: the environment itself serves the agent socket, so the
action ``step(action)`` is given is the one the flow applies. ``step`` then
waits, in real time, for the flow's next observation (one per receiver
poll, 200 ms by default, as AlphaRTC polls) and returns it with the reward
of that observation, the outcome of this action: ``LabRtcEnv(reward=...)``,
a name in ``endpoints.metrics.objectives.REWARDS`` (default ``onl``,
OpenNetLab's ``rtc_env``: normalised receive rate − 0.2 × loss; ``qoe``;
``capacity``, which reads the environment's trace over the observation's
60 ms window, on the lab's trace clock, and puts it in ``info["capacity_bps"]``).

Steps are wall-clock: a step that returns after the flow's deadline is not
applied (the flow keeps its last estimate, as it does with the agent), and
``info`` says so: ``action_delay_ms`` (observation sent → action replied),
``action_applied``, ``late_actions`` so far. Spaces are OpenNetLab's: the
observation is their normalised 4-feature state (log receive rate, delay/1 s,
loss, log last estimate), the action their sigmoid output in [0, 1]
mapped to 10 kbit/s–8 Mbit/s on a log scale. ``LabRtcEnv(history=N)`` with
N > 1 speaks contract ``rtc-hist`` instead (the last N states, newest first,
rates normalised up to 32 Mbit/s; the action a factor of 0.5–2 on the flow's
estimate), as :mod:`netlab.agent.policies.rtc_history` serves it.

Needs root (network namespaces), like every lab. ``gymnasium.make
("netlab/LabRtc-v0", envs=[...])`` works once this module is imported.
"""

from __future__ import annotations

import contextlib
import queue
import selectors
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat

import gymnasium
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

from endpoints import agent_protocol as proto
from endpoints.agent_rtc import MAX_HISTORY, STATE_SIZE, STEP_MS, RtcContract, rtc_contract
from endpoints.metrics.objectives import NEEDS_CAPACITY, REWARDS
from netlab.agent.interval import DecisionTiming, decision_timing
from netlab.agent.lab import RTC_POLICY_RECEIVER, AgentSet
from netlab.agent.policies import opennetlab, rtc_history
from netlab.agent.policies.spec import ActionTransform, ObservationTransform
from netlab.errors import NetlabError
from netlab.learning.scenario_set import EnvConfig, env_trace, offered_before, scenario_for
from shaping.traces import Trace

if TYPE_CHECKING:
    from netlab.lab.replay import TraceReplays

ENV_ID = "netlab/LabRtc-v0"
DEFAULT_DEADLINE_S = 0.05
FIRST_OBS_TIMEOUT_S = 30.0


class _Abort(Exception):
    """Raised from the flow runner's tick to end an episode early."""


@dataclass
class _Observation:
    conn: socket.socket
    frame: proto.Frame
    received_ns: int


@dataclass
class DecisionServer:
    """Serves the agent protocol on ``path`` for the flows of one episode:
    HELLO is answered at once, every OBSERVE is queued for :meth:`next`."""

    path: Path
    contract: RtcContract = field(default_factory=RtcContract)
    observations: queue.Queue[_Observation] = field(default_factory=queue.Queue)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _listener: socket.socket | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(self.path))
        listener.listen(8)
        listener.setblocking(False)
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name="netlab-gym", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        assert self._listener is not None
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ, None)
        try:
            while not self._stop.is_set():
                for key, _ in selector.select(0.1):
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            conn, _ = self._listener.accept()
                            selector.register(conn, selectors.EVENT_READ, conn)
                        continue
                    conn = key.data
                    try:
                        data = conn.recv(proto.MAX_FRAME + 1)
                    except OSError:
                        data = b""
                    if not data:
                        selector.unregister(conn)
                        conn.close()
                        continue
                    self._on_frame(conn, data)
        finally:
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()

    def _on_frame(self, conn: socket.socket, data: bytes) -> None:
        try:
            frame = proto.decode(data)
        except proto.FrameError:
            return
        if frame.kind is proto.Kind.HELLO:
            with contextlib.suppress(OSError):
                conn.send(proto.encode(proto.Kind.HELLO_OK, frame.flow, 0, frame.t_ns,
                                       [self.contract.obs_size, 1],
                                       text=self.contract.name))
        elif frame.kind is proto.Kind.OBSERVE:
            self.observations.put(_Observation(conn, frame, time.monotonic_ns()))

    @staticmethod
    def reply(obs: _Observation, action: float) -> int:
        """Send the action for ``obs``; returns the reply's CLOCK_MONOTONIC ns."""
        with contextlib.suppress(OSError):
            obs.conn.send(proto.encode(proto.Kind.ACTION, obs.frame.flow, obs.frame.seq,
                                       obs.frame.t_ns, [action]))
        return time.monotonic_ns()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._listener is not None:
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class _EnvAgents(AgentSet):
    """Points the policy flow at the environment's own decision server."""

    socket_path: Path = Path()
    deadline_s: float = DEFAULT_DEADLINE_S
    contract: RtcContract = field(default_factory=RtcContract)

    def rtc_receiver(self, host: str, flow_index: int, decision_interval_s: float | None = None
                     ) -> tuple[str, str, DecisionTiming]:
        """The environment's server has no checkpoint: the flow's interval or the
        receiver's 200 ms poll, over OpenNetLab's 60 ms window as the simulator's."""
        deadline_us = max(1, round(self.deadline_s * 1e6))
        timing = decision_timing(decision_interval_s, None, float(STEP_MS))
        return RTC_POLICY_RECEIVER, (f"policy:{self.socket_path}?deadline={deadline_us}us"
                                     f"&fallback=keep&flow={flow_index + 1}"
                                     f"&window={STEP_MS}ms{self.contract.receiver_options()}"
                                     ), timing

    def stop(self) -> list[dict[str, Any]]:
        return []


class LabRtcEnv(gymnasium.Env[npt.NDArray[np.float32], npt.NDArray[np.float32]]):
    """See the module docstring. ``envs``: the set ``reset`` samples from."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's API)

    def __init__(self, envs: list[EnvConfig] | None = None, *, lab: str = "ftgym",
                 deadline_s: float = DEFAULT_DEADLINE_S, backend: str | None = None,
                 work_dir: str | Path | None = None, reward: str = "onl",
                 history: int = 1) -> None:
        super().__init__()
        if reward not in REWARDS:
            raise NetlabError(f"unknown reward {reward!r}", where="LabRtcEnv(reward=...)",
                              fix=f"use one of {', '.join(sorted(REWARDS))}")
        try:
            self.contract = rtc_contract(opennetlab.CONTRACT if history == 1
                                         else rtc_history.CONTRACT, STATE_SIZE * history)
        except ValueError as exc:
            raise NetlabError(str(exc), where="LabRtcEnv(history=...)",
                              fix=f"1 (OpenNetLab's state) to {MAX_HISTORY} states") from None
        policy = rtc_history if self.contract.relative else opennetlab
        self.reward = reward
        self.envs = envs or [EnvConfig()]
        self.lab_name = lab
        self.deadline_s = deadline_s
        self.backend = backend
        self._tmp = tempfile.TemporaryDirectory(prefix="netlab-gym-") if work_dir is None \
            else None
        self.work_dir = Path(self._tmp.name if self._tmp is not None else str(work_dir))
        # delay is relative to the first packet's, so it can be negative
        self._obs_low = np.tile(np.array([0, -1, 0, 0], dtype=np.float32), history)
        self._obs_high = np.ones(self.contract.obs_size, dtype=np.float32)
        self.observation_space = spaces.Box(low=self._obs_low, high=self._obs_high,
                                            dtype=np.float32)
        self.action_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._normalise = ObservationTransform(policy.OBSERVATION, self.contract.obs_size)
        self._to_action = ActionTransform(policy.ACTION, 1)
        self._episode = 0
        self._lab: Any = None
        self._server: DecisionServer | None = None
        self._runner_thread: threading.Thread | None = None
        self._replays: TraceReplays | None = None
        self._abort = threading.Event()
        self._pending: _Observation | None = None
        self._last_obs = np.zeros(self.contract.obs_size, dtype=np.float32)
        self._late = 0
        self._steps = 0
        self.current: EnvConfig | None = None
        self.run_error: BaseException | None = None
        self._trace: Trace | None = None
        self._epoch_ns = 0

    # ---- episode lifecycle -------------------------------------------------------------

    def _observation(self, frame: proto.Frame) -> npt.NDArray[np.float32]:
        raw = frame.vector.reshape(1, -1).astype(np.float32)
        obs = self._normalise.numpy(raw)[0]
        clipped: npt.NDArray[np.float32] = np.clip(obs, self._obs_low, self._obs_high).astype(
            np.float32)
        return clipped

    def _teardown(self) -> None:
        self._abort.set()
        if self._runner_thread is not None:
            self._runner_thread.join(30)
            self._runner_thread = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._replays is not None:
            self._replays.stop()
            self._replays = None
        if self._lab is not None:
            self._lab.down()
            self._lab = None
        self._pending = None

    def _run_flows(self, runner: Any, duration_s: float) -> None:
        def tick(_: float) -> None:
            if self._abort.is_set():
                raise _Abort

        try:
            runner.run(duration_s, tick)
        except _Abort:
            pass
        except BaseException as exc:  # reported by the next step
            self.run_error = exc

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[npt.NDArray[np.float32], dict[str, Any]]:
        super().reset(seed=seed)
        self._teardown()
        from netlab.lab import lifecycle
        from netlab.lab.replay import TraceReplays, start_kernel_replays
        from netlab.preflight import probe_kernel
        from netlab.run.flows import FlowRunner
        from netlab.run.results import new_run_dir
        from netlab.run.start import hand_out_zero

        if options and "env" in options:
            env = options["env"]
            if not isinstance(env, EnvConfig):
                raise NetlabError("options['env'] must be an EnvConfig", where="reset(options)",
                                  fix="pass netlab.learning.scenario_set.EnvConfig(...)")
        else:
            env = self.envs[int(self.np_random.integers(len(self.envs)))]
        self.current = env
        self._episode += 1
        directory = self.work_dir / f"episode-{self._episode}"
        scenario = scenario_for(env, directory, lab=self.lab_name, estimator="policy",
                                deadline_s=self.deadline_s)
        self._lab = lifecycle.up(scenario, backend=self.backend)
        self._trace = env_trace(env) if self.reward in NEEDS_CAPACITY else None
        server = DecisionServer(directory / "agent.sock", self.contract)
        server.start()
        self._server = server
        run_dir = new_run_dir(directory / "runs", scenario.name)
        agents = _EnvAgents(run_dir, socket_path=server.path, deadline_s=self.deadline_s,
                            contract=self.contract)
        runner = FlowRunner(scenario, self._lab.plan, self._lab.journal, run_dir, agents)
        self._abort.clear()
        self.run_error = None
        kernel_links = self._lab.backends.links("kernel", self._lab.plan)
        replays = TraceReplays()
        if kernel_links:  # htb follows the trace only with its replayers
            replays = start_kernel_replays(
                self._lab.plan, self._lab.journal, netem=probe_kernel().has_qdisc("netem"),
                base_dir=scenario.source.parent if scenario.source else None,
                duration_s=scenario.duration_s, links=kernel_links)
        self._replays = replays
        runner.start_receivers()
        # One time zero for every link and the flow: the capacity reward's clock too.
        self._epoch_ns = hand_out_zero(replays, self._lab.shaping.user_links, runner)
        self._runner_thread = threading.Thread(
            target=self._run_flows, args=(runner, scenario.duration_s), daemon=True)
        self._runner_thread.start()
        self._late = self._steps = 0
        try:
            first = server.observations.get(timeout=FIRST_OBS_TIMEOUT_S)
        except queue.Empty:
            self._teardown()
            raise NetlabError("the flow sent no observation", where=str(directory),
                              fix="see the receiver.out of the flow in the run directory"
                              ) from None
        self._pending = first
        self._last_obs = self._observation(first.frame)
        return self._last_obs.copy(), {"env": env.label, "run_dir": str(run_dir)}

    def step(self, action: npt.NDArray[np.float32]
             ) -> tuple[npt.NDArray[np.float32], SupportsFloat, bool, bool, dict[str, Any]]:
        if self._server is None or self._pending is None:
            raise NetlabError("step() before reset()", where="LabRtcEnv.step",
                              fix="call reset() first (and again after truncation)")
        value = float(np.clip(np.asarray(action, dtype=np.float32).reshape(-1)[0], 0.0, 1.0))
        # bit/s, or with rtc-hist a factor on the flow's estimate
        applied_value = float(self._to_action(np.array([[value]]))[0, 0])
        pending = self._pending
        replied_ns = self._server.reply(pending, applied_value)
        delay_ms = (replied_ns - pending.frame.t_ns) / 1e6
        applied = delay_ms <= self.deadline_s * 1e3
        self._late += 0 if applied else 1
        self._steps += 1
        key = "action_factor" if self.contract.relative else "action_bps"
        info: dict[str, Any] = {key: applied_value, "action_delay_ms": delay_ms,
                                "action_applied": applied, "late_actions": self._late,
                                "steps": self._steps}
        nxt = self._next_observation()
        if nxt is None:
            self._pending = None
            if self.run_error is not None:
                raise NetlabError(f"the episode's flow runner failed: {self.run_error}",
                                  where="LabRtcEnv.step", fix="see the run directory")
            return self._last_obs.copy(), 0.0, False, True, info
        self._pending = nxt
        self._last_obs = self._observation(nxt.frame)
        info["wait_ms"] = (nxt.received_ns - replied_ns) / 1e6
        reward, capacity = self._reward(nxt.frame)
        if capacity is not None:
            info["capacity_bps"] = capacity
        return self._last_obs.copy(), reward, False, False, info

    def _reward(self, frame: proto.Frame) -> tuple[float, float | None]:
        """The chosen reward of the raw state the flow sent and, for a capacity
        reward, what the trace offered over the state's window (else None)."""
        capacity = None
        if self._trace is not None:
            capacity = offered_before(self._trace, self._epoch_ns, STEP_MS / 1e3)(frame.t_ns)
        return float(REWARDS[self.reward](frame.vector.tolist(), capacity)), capacity

    def _next_observation(self) -> _Observation | None:
        assert self._server is not None
        while True:
            try:
                return self._server.observations.get(timeout=0.25)
            except queue.Empty:
                if self._runner_thread is None or not self._runner_thread.is_alive():
                    return None

    def close(self) -> None:
        self._teardown()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        super().close()


gymnasium.register(ENV_ID, entry_point="netlab.gym:LabRtcEnv", nondeterministic=True,
                   disable_env_checker=True)
