"""Open a checkpoint safely and say what it is.

Only ``torch.load(..., weights_only=True)`` is used: a pickle that needs code
to unpickle (a whole ``nn.Module``, an optimizer with custom classes, numpy
objects) is refused, with how to convert it, because unpickling runs
arbitrary code from the file. TorchScript archives are recognised by their
layout (``code/`` and ``constants.pkl`` in the zip) and opened with
``torch.jit.load``, which runs no Python from the file.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from netlab.agent.interval import decision_timing
from netlab.agent.policies import opennetlab
from netlab.agent.policies.base import Policy
from netlab.agent.policies.budget import MAX_CHECKPOINT_BYTES
from netlab.agent.policies.spec import FORMAT, SpecError, SpecPolicy
from netlab.agent.policies.torchscript import TorchScriptPolicy
from netlab.errors import NetlabError

CONVERT_FIX = ("re-save only the weights where the model is defined: "
               "torch.save(model.state_dict(), 'policy.pth') (OpenNetLab layout or wrapped "
               "in the netlab format, see `netlab agent inspect --help`), or export code and "
               "weights together: torch.jit.script(model).save('policy.pt')")


_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def check_size(path: Path) -> None:
    """The file, and a zip archive's unpacked contents, within the budget (a
    deflated archive of zeros unpacks to gigabytes), before torch reads it."""
    limit = MAX_CHECKPOINT_BYTES
    fix = (f"a policy checkpoint is a few MB; keep it under {limit >> 20} MiB "
           "(save only the policy's weights)")
    size = path.stat().st_size
    if size > limit:
        raise NetlabError(f"checkpoint is {size / (1 << 20):.0f} MiB, over {limit >> 20} MiB",
                          where=str(path), fix=fix)
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
            entries = len(archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise NetlabError(f"cannot read the checkpoint: {exc}", where=str(path),
                          fix="give a file written by torch.save or torch.jit.save") from exc
    if unpacked > limit or entries > 100_000:
        raise NetlabError(f"checkpoint unpacks to {unpacked / (1 << 20):.0f} MiB in {entries} "
                          f"entries, over {limit >> 20} MiB", where=str(path), fix=fix)


def load_raw(path: Path) -> Any:
    """The object in a non-TorchScript checkpoint, loaded without running code."""
    check_size(path)
    try:
        with warnings.catch_warnings():  # "pickle protocol 4" noise on hostile files
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).strip().splitlines()
        code = next((line for line in lines if "Unsupported global" in line), None)
        if code is not None:
            raise NetlabError(f"checkpoint needs code to unpickle, refused ({code.strip()})",
                              where=str(path), fix=CONVERT_FIX) from exc
        raise _unreadable(path, exc) from exc
    except (RuntimeError, EOFError, OSError, ValueError, pickle.PickleError, MemoryError,
            KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> NetlabError:
    """torch's own words, without its advice to turn weights_only off."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    reason = useful[0] if useful else (
        "the file is empty or cut short" if isinstance(exc, EOFError) else type(exc).__name__)
    return NetlabError(f"cannot read the checkpoint: {reason[:200]}", where=str(path),
                       fix="give a file written by torch.save or torch.jit.save")


def load_policy(path: str | Path) -> Policy:
    """The policy in ``path`` (own format, OpenNetLab PPO state_dict, TorchScript)."""
    source = Path(path)
    if not source.is_file():
        raise NetlabError("checkpoint file does not exist", where=str(source),
                          fix="check the path (relative paths are from the scenario file)")
    try:
        if is_torchscript(source):
            check_size(source)
            return TorchScriptPolicy(source)
        return policy_from_object(load_raw(source), str(source))
    except SpecError as exc:
        raise NetlabError(f"checkpoint does not describe a servable policy: {exc}",
                          where=str(source),
                          fix="fix the named field; `netlab agent inspect` shows the layout"
                          ) from exc


def policy_from_object(obj: Any, where: str) -> Policy:
    if not isinstance(obj, Mapping):
        raise NetlabError(f"checkpoint holds a {type(obj).__name__}, not a dict of weights",
                          where=where, fix=CONVERT_FIX)
    if obj.get("format") == FORMAT:
        return SpecPolicy(obj)
    if opennetlab.looks_like_opennetlab(obj):
        return SpecPolicy(opennetlab.as_checkpoint(obj, source=where),
                          format_name="opennetlab-ppo")
    keys = [str(k) for k in obj]
    if any(k.startswith(("actor.", "critic.")) for k in keys):
        problems = "; ".join(opennetlab.shape_mismatches(obj)[:4])
        raise NetlabError(f"looks like an OpenNetLab PPO state_dict but {problems}",
                          where=where, fix="use the gym-example layout (Linear 4→128→64→32→1 "
                                           "actor and critic) or wrap it in the netlab format")
    shown = ", ".join(keys[:6]) + (" ..." if len(keys) > 6 else "")
    raise NetlabError(f"unknown checkpoint layout (keys: {shown})", where=where,
                      fix="save a netlab-format dict (format: netlab-policy, model spec, "
                          "state_dict), OpenNetLab's PPO state_dict, or a TorchScript module")


def _step_line(step_ms: float | None, window_ms: float | None) -> str:
    timing = decision_timing(None, step_ms, window_ms)
    trained = (f"trained at {step_ms:g} ms steps" if step_ms is not None
               else "no step recorded (metadata.step_ms)")
    return (f"{trained}; an RTC policy flow without decision_interval decides "
            f"{timing.describe()}")


def describe(policy: Policy, path: Path) -> list[str]:
    """Human-readable lines for ``netlab agent inspect``."""
    info = policy.info
    lines = [f"checkpoint   {path}",
             f"format       {info.format}",
             f"contract     {info.contract} (flows declare this in HELLO)",
             f"observation  {info.obs_size} float32 values: {info.observation}",
             f"action       {info.action_size} float32 value(s): {info.action}",
             f"recurrent    {'yes: (h, c) kept per flow' if info.recurrent else 'no'}",
             f"parameters   {info.parameters:,}",
             f"step         {_step_line(info.step_ms, info.window_ms)}"]
    lines += [f"meta         {key}: {value}" for key, value in info.metadata.items()
              if value not in (None, "")]
    return lines
