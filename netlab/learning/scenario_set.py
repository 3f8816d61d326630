"""Scenario sets for learning: Genet-style environment configurations that
become runnable scenario files.

Genet (Xia et al., "Genet: Automatic Curriculum Generation for Learning
Adaptation in Networking", SIGCOMM 2022) describes an environment by a few
parameters: bandwidth range, how often bandwidth changes (``T_s``), one-way
delay, queue size and random loss. :class:`EnvConfig` holds one such point
(or a trace file from the corpus, for held-out evaluation);
:class:`ParamSpace` holds the ranges a set is sampled from and the curriculum
searches; :func:`write_scenario` turns one config into a scenario YAML with
its trace beside it: two hosts, the traced bottleneck on the media
direction, one RTC flow whose estimator is the policy (served by the
receiver's agent) or the rule-based baseline.
"""

from __future__ import annotations

import glob
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from netlab.errors import NetlabError
from netlab.scenario import load_scenario
from netlab.scenario.model import Scenario
from shaping.traces import GenetParams, Trace, generate, load_trace, write_trace

#: The searchable dimensions and their units, in Genet's order.
DIMENSIONS: tuple[str, ...] = ("max_bw_mbps", "bw_ratio", "change_interval_s", "delay_ms",
                               "queue_pkt", "loss_pct")
#: Genet's training ranges, scaled to the RTC policy's 10 kbit/s–8 Mbit/s action range.
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "max_bw_mbps": (0.5, 5.0),
    "bw_ratio": (1.0, 4.0),  # max / min bandwidth of the trace
    "change_interval_s": (1.0, 10.0),
    "delay_ms": (5.0, 100.0),
    "queue_pkt": (10.0, 100.0),
    "loss_pct": (0.0, 2.0),
}
POLICY_HOST, SENDER_HOST = "bob", "alice"
CALL_FLOW = "call"  # the id of the environment's one RTC flow


@dataclass(frozen=True)
class EnvConfig:
    """One environment. ``trace`` (a file or bundled name) replaces the generator."""

    max_bw_mbps: float = 3.0
    bw_ratio: float = 2.0
    change_interval_s: float = 2.0
    delay_ms: float = 20.0
    queue_pkt: float = 50.0
    loss_pct: float = 0.0
    duration_s: float = 20.0
    seed: int = 0
    trace: str | None = None
    #: where the call starts in ``trace``: a window of ``duration_s`` from here
    trace_start_s: float = 0.0

    @property
    def label(self) -> str:
        if self.trace is not None:
            at = f"@{self.trace_start_s:g}s" if self.trace_start_s else ""
            return f"{Path(self.trace).name}{at}/d{self.delay_ms:g}/q{round(self.queue_pkt)}"
        return (f"bw{self.max_bw_mbps / self.bw_ratio:.2g}-{self.max_bw_mbps:.2g}M/"
                f"T{self.change_interval_s:.2g}/d{self.delay_ms:.3g}/q{round(self.queue_pkt)}/"
                f"l{self.loss_pct:.2g}/s{self.seed}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "scenario set") -> EnvConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NetlabError(f"unknown environment keys {unknown}", where=where,
                              fix=f"use only {sorted(known)}")
        return cls(**dict(data))

    def with_seed(self, seed: int) -> EnvConfig:
        return replace(self, seed=seed)


@dataclass(frozen=True)
class ParamSpace:
    """Ranges per dimension (a point range fixes a dimension)."""

    ranges: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_RANGES))
    duration_s: float = 20.0

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None, duration_s: float,
                    where: str = "space") -> ParamSpace:
        ranges = dict(DEFAULT_RANGES)
        for key, value in (data or {}).items():
            if key not in DEFAULT_RANGES:
                raise NetlabError(f"unknown dimension {key!r}", where=f"{where}.{key}",
                                  fix=f"use one of {', '.join(DIMENSIONS)}")
            if isinstance(value, int | float):
                low = high = float(value)
            elif isinstance(value, list | tuple) and len(value) == 2 and all(
                    isinstance(v, int | float) for v in value):
                low, high = float(value[0]), float(value[1])
            else:
                raise NetlabError(f"{key}: expected [low, high] or a number, got {value!r}",
                                  where=f"{where}.{key}", fix=f"write {key}: [1, 4]")
            if high < low or not (math.isfinite(low) and math.isfinite(high)):
                raise NetlabError(f"{key}: empty range {low}..{high}", where=f"{where}.{key}",
                                  fix="give low <= high")
            ranges[key] = (low, high)
        if ranges["bw_ratio"][0] < 1:
            raise NetlabError("bw_ratio below 1 (max bandwidth under min)",
                              where=f"{where}.bw_ratio", fix="give bw_ratio >= 1")
        return cls(ranges, duration_s)

    def sample(self, rng: random.Random, seed: int) -> EnvConfig:
        values = {key: rng.uniform(low, high) for key, (low, high) in self.ranges.items()}
        return self.config(values, seed)

    def config(self, values: Mapping[str, float], seed: int) -> EnvConfig:
        """The config at ``values`` (clipped into the ranges)."""
        clipped: dict[str, Any] = {k: min(max(float(values.get(k, lo)), lo), hi)
                                   for k, (lo, hi) in self.ranges.items()}
        return EnvConfig(**{**clipped, "duration_s": self.duration_s, "seed": seed})


def sample_set(space: ParamSpace, count: int, seed: int) -> list[EnvConfig]:
    """``count`` configs drawn uniformly from ``space`` (deterministic in ``seed``)."""
    rng = random.Random(seed)
    return [space.sample(rng, seed * 10_000 + i) for i in range(count)]


def trace_set(patterns: Sequence[str], base_dir: Path, *, delay_ms: float, queue_pkt: float,
              loss_pct: float, duration_s: float) -> list[EnvConfig]:
    """One config per trace file matched by ``patterns`` (globs relative to ``base_dir``)."""
    found: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(base_dir / pattern)))
        if not matches:
            raise NetlabError(f"no trace file matches {pattern!r}", where=f"traces ({base_dir})",
                              fix="give paths or globs relative to the config file")
        found += matches
    return [EnvConfig(delay_ms=delay_ms, queue_pkt=queue_pkt, loss_pct=loss_pct,
                      duration_s=duration_s, seed=i, trace=str(Path(p).resolve()))
            for i, p in enumerate(found)]


def window_set(names: Sequence[str], *, duration_s: float, every_s: float,
               shapes: Sequence[Mapping[str, Any]], where: str) -> list[EnvConfig]:
    """Calls cut from long recordings: for every corpus trace matching ``names``
    (fnmatch patterns), a ``duration_s`` window starting every ``every_s`` while it
    fits, under each link shape (``delay_ms``, ``queue_pkt``, ``loss_pct``). A
    trace that carries its own delay (OpenNetLab's rtt) keeps it: the shape's
    delay applies to traces without one, and feedback gets the same."""
    from shaping.traces.corpus import matching

    chosen, unmatched = matching(list(names))
    if unmatched:
        raise NetlabError(f"no bundled trace matches {unmatched[0]!r}", where=f"{where}.traces",
                          fix="use names or patterns from `netlab traces list`")
    if duration_s <= 0 or every_s <= 0:
        raise NetlabError("duration_s and every_s must be > 0", where=where,
                          fix="give e.g. duration_s: 30 and every_s: 30")
    for i, shape in enumerate(shapes):
        unknown = sorted(set(shape) - {"delay_ms", "queue_pkt", "loss_pct"})
        if unknown:
            raise NetlabError(f"unknown shape keys {unknown}", where=f"{where}.shapes[{i}]",
                              fix="use delay_ms, queue_pkt and loss_pct")
    envs: list[EnvConfig] = []
    for name in chosen:
        trace = load_trace(name)
        own_delay_ms = (None if trace.delays_s is None
                        else 1e3 * sum(trace.delays_s) / len(trace.delays_s))
        start = 0.0
        while start + duration_s <= trace.period_s + 1e-9:
            for shape in shapes:
                delay = own_delay_ms if own_delay_ms is not None else float(
                    shape.get("delay_ms", 20))
                envs.append(EnvConfig(delay_ms=round(delay, 3),
                                      queue_pkt=float(shape.get("queue_pkt", 50)),
                                      loss_pct=float(shape.get("loss_pct", 0)),
                                      duration_s=duration_s, seed=len(envs), trace=name,
                                      trace_start_s=start))
            start += every_s
    return envs


def load_set(data: Mapping[str, Any], base_dir: Path, where: str) -> list[EnvConfig]:
    """A set from a config mapping: ``{space, count, seed, duration}``,
    ``{traces: [globs], delay, queue, loss, duration}``, ``{windows: {traces,
    every_s}, shapes, duration}`` or ``{envs: [...]}``."""
    duration = float(data.get("duration_s", 20.0))
    if "windows" in data:
        windows = data["windows"]
        if not isinstance(windows, Mapping) or not isinstance(windows.get("traces"), list):
            raise NetlabError("windows needs a list of trace names", where=f"{where}.windows",
                              fix="write windows: {traces: [cellular/*-lte-short.*], every_s: 30}")
        return window_set(list(windows["traces"]), duration_s=duration,
                          every_s=float(windows.get("every_s", duration)),
                          shapes=list(data.get("shapes") or [{}]), where=f"{where}.windows")
    if "envs" in data:
        return [EnvConfig.from_dict(e, f"{where}.envs[{i}]") for i, e in enumerate(data["envs"])]
    if "traces" in data:
        return trace_set(list(data["traces"]), base_dir, delay_ms=float(data.get("delay_ms", 20)),
                         queue_pkt=float(data.get("queue_pkt", 50)),
                         loss_pct=float(data.get("loss_pct", 0)), duration_s=duration)
    space = ParamSpace.from_config(data.get("space"), duration, f"{where}.space")
    return sample_set(space, int(data.get("count", 8)), int(data.get("seed", 0)))


def env_trace(env: EnvConfig) -> Trace:
    """The bottleneck's trace: the file, or Genet's generator at the config's seed
    (deterministic, so a learner can recompute what a lab replayed)."""
    if env.trace is not None:
        trace = load_trace(env.trace)
        return trace.window(env.trace_start_s, env.duration_s) if env.trace_start_s else trace
    max_bps = env.max_bw_mbps * 1e6
    params = GenetParams(min_bw_bps=max_bps / max(1.0, env.bw_ratio), max_bw_bps=max_bps,
                         duration_s=env.duration_s, change_interval_s=env.change_interval_s,
                         seed=env.seed)
    return generate(params, name=env.label)


def offered_before(trace: Trace, epoch_ns: int, window_s: float
                   ) -> Callable[[int], float]:
    """``at(t_ns)``: what ``trace``, replayed from ``epoch_ns`` (CLOCK_MONOTONIC),
    offered over the ``window_s`` before ``t_ns``: the capacity a step's state saw,
    for rewards measured against it."""
    def at(t_ns: int) -> float:
        end_s = max(0.0, (t_ns - epoch_ns) / 1e9)
        return trace.mean_capacity_bps(max(0.0, end_s - window_s), end_s)
    return at


def write_scenario(env: EnvConfig, directory: Path, *, lab: str, estimator: str,
                   checkpoint: Path | None = None, deadline_s: float = 0.02,
                   fallback: str = "keep") -> Path:
    """Write ``scenario.yaml`` (and the generated trace) for one run of ``env``.

    ``estimator`` is ``policy`` (served by bob's agent from ``checkpoint``) or
    a baseline estimator name such as ``gcc``. The media direction carries
    the trace, the delay, the queue and the loss; feedback gets the delay."""
    directory.mkdir(parents=True, exist_ok=True)
    if env.trace is not None and env.trace_start_s:
        window = env_trace(env)
        trace_fmt = "mahimahi" if window.opportunities_ms is not None else "opennetlab"
        trace_file = directory / f"trace-window.{'trace' if trace_fmt == 'mahimahi' else 'json'}"
        write_trace(window, trace_file, trace_fmt)
        trace_path = trace_file.name
    elif env.trace is not None:
        trace_path = env.trace
    else:
        trace_file = directory / "trace.csv"
        write_trace(env_trace(env), trace_file, "genet-csv")
        trace_path = trace_file.name
    up: dict[str, Any] = {"trace": trace_path, "delay": f"{env.delay_ms:.3f}ms",
                          "queue": f"{max(1, round(env.queue_pkt))}pkt"}
    if env.loss_pct > 0:
        up["loss"] = f"{env.loss_pct:.4f}%"
    document: dict[str, Any] = {
        "name": lab,
        "duration": f"{env.duration_s:g}s",
        "seed": env.seed % 1_000_000,
        "hosts": [SENDER_HOST, POLICY_HOST],
        "links": [{"endpoints": [SENDER_HOST, POLICY_HOST], "up": up,
                   "down": {"delay": f"{env.delay_ms:.3f}ms"}}],
        "flows": [{"id": CALL_FLOW, "kind": "rtc", "from": SENDER_HOST, "to": POLICY_HOST,
                   "estimator": estimator}],
    }
    if estimator == "policy":
        agent: dict[str, Any] = {"deadline": f"{deadline_s * 1e3:g}ms", "fallback": fallback}
        if checkpoint is not None:
            agent["checkpoint"] = str(Path(checkpoint).resolve())
        document["agents"] = {POLICY_HOST: agent}
    path = directory / "scenario.yaml"
    path.write_text("# written by netlab.learning for one episode\n"
                    + yaml.safe_dump(document, sort_keys=False))
    return path


def scenario_for(env: EnvConfig, directory: Path, **kwargs: Any) -> Scenario:
    """:func:`write_scenario`, then load it through the normal validation."""
    return load_scenario(write_scenario(env, directory, **kwargs))
