"""Hostile checkpoints: declared widths that would allocate gigabytes, wrong
dtypes, pickles that run code, truncated and oversized files, zip bombs.
Each is refused by `netlab agent inspect` quickly, within 4 GiB, no traceback."""

from __future__ import annotations

import io
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from netlab.agent.policies.spec import FORMAT, VERSION, MlpActorCritic
from tests.hostile.conftest import Refusal, assert_refused, refuse, refuse_each

MLP = {"type": "mlp", "actor": [8], "activation": "relu", "output": "sigmoid"}


def _checkpoint(model: dict[str, Any] | None = None, state: dict[str, Any] | None = None,
                **over: Any) -> dict[str, Any]:
    spec = model or MLP
    if state is None:
        state = dict(MlpActorCritic(4, 1, MLP).state_dict())
    ckpt = {"format": FORMAT, "version": VERSION, "contract": "rtc-onl4", "obs_size": 4,
            "action_size": 1, "model": spec, "observation": {"type": "identity"},
            "action": {"type": "identity"}, "std": 0.05, "state_dict": state, "metadata": {}}
    ckpt.update(over)
    return ckpt


def _save(obj: object) -> Callable[[Path], None]:
    return lambda path: torch.save(obj, path)


def _good_state(**replace: torch.Tensor) -> dict[str, torch.Tensor]:
    state = dict(MlpActorCritic(4, 1, MLP).state_dict())
    state.update(replace)
    return state


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("unpickled: this ran code",))


def _evil_pickle(path: Path) -> None:
    torch.save({"format": FORMAT, "x": _Evil()}, path)


def _truncated(path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(_checkpoint(), buffer)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])


def _zip_bomb(path: Path) -> None:
    """A torch.save archive re-packed with deflate: 300 MiB of zeros (over the
    256 MiB budget) in a file of a few hundred KiB."""
    plain = path.with_suffix(".plain")
    torch.save(_checkpoint(state=_good_state(**{"actor.0.weight": torch.zeros(8, 4)})), plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(
            path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("/data/0"):
                with dst.open(info.filename, "w", force_zip64=True) as out:
                    chunk = bytes(1 << 20)
                    for _ in range(300):
                        out.write(chunk)
            else:
                dst.writestr(info.filename, data)


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    # name: (writer, text the error must contain)
    "actor-width-1e9": (_save(_checkpoint({**MLP, "actor": [1_000_000_000]}, state={})),
                        "model.actor[0]"),
    "actor-many-wide-layers": (_save(_checkpoint({**MLP, "actor": [16_000] * 60}, state={})),
                               "parameters"),
    "lstm-huge": (_save(_checkpoint({"type": "lstm", "torso": [8], "lstm": 10_000_000},
                                    state={})), "model.lstm"),
    "obs-size-huge": (_save(_checkpoint(obs_size=2**40, state={})), "obs_size"),
    "width-negative": (_save(_checkpoint({**MLP, "actor": [-5]}, state={})), "model.actor[0]"),
    "width-zero": (_save(_checkpoint({**MLP, "actor": [0]}, state={})), "model.actor[0]"),
    "width-float": (_save(_checkpoint({**MLP, "actor": [8.5]}, state={})), "model.actor[0]"),
    "width-string": (_save(_checkpoint({**MLP, "actor": ["8"]}, state={})), "model.actor[0]"),
    "width-bool": (_save(_checkpoint({**MLP, "actor": [True]}, state={})), "model.actor[0]"),
    "dtype-int": (_save(_checkpoint(state=_good_state(
        **{"actor.0.weight": torch.zeros(8, 4, dtype=torch.int64)}))), "dtype"),
    "dtype-complex": (_save(_checkpoint(state=_good_state(
        **{"actor.0.bias": torch.zeros(8, dtype=torch.complex64)}))), "dtype"),
    "dtype-bool": (_save(_checkpoint(state=_good_state(
        **{"actor.0.bias": torch.zeros(8, dtype=torch.bool)}))), "dtype"),
    "weights-nan": (_save(_checkpoint(state=_good_state(
        **{"actor.0.bias": torch.full((8,), float("nan"))}))), "NaN"),
    "shape-mismatch-huge": (_save(_checkpoint(state=_good_state(
        **{"actor.0.weight": torch.zeros(8, 400)}))), "shape"),
    "missing-tensor": (_save(_checkpoint(state={})), "missing"),
    "code-pickle": (_evil_pickle, "refused"),
    "truncated": (_truncated, "cannot read"),
    "garbage": (lambda p: _write(p, b"\x80\x04garbage" * 100), "cannot read"),
    "empty": (lambda p: _write(p, b""), "cannot read"),
    "a-list": (_save([torch.zeros(3)]), "not a dict"),
    "zip-bomb": (_zip_bomb, "MiB"),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refusal]:
    """Every case's ``netlab agent inspect c.pth``, run in one child (torch
    is imported once, not once per case: about 2.5 s each)."""
    work = tmp_path_factory.mktemp("checkpoints")
    cases = {}
    for name, (writer, _) in CASES.items():
        folder = work / name
        folder.mkdir()
        writer(folder / "c.pth")
        cases[name] = (folder, ["agent", "inspect", "c.pth"])
    return refuse_each(cases, work)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_checkpoint_is_refused(case: str, refusals: dict[str, Refusal]) -> None:
    refusal = refusals[case]
    assert_refused(refusal)
    assert CASES[case][1] in refusal.stderr, refusal.stderr
    assert "unpickled" not in refusal.stdout + refusal.stderr


def test_oversized_checkpoint_file_is_refused_unread(tmp_path: Path) -> None:
    with open(tmp_path / "c.pth", "wb") as f:
        f.truncate(5 << 30)
    refusal = refuse("agent", "inspect", "c.pth", cwd=tmp_path)
    assert "MiB" in refusal.stderr


def test_golden_declared_width(tmp_path: Path) -> None:
    torch.save(_checkpoint({**MLP, "actor": [1_000_000_000]}, state={}), tmp_path / "c.pth")
    refusal = refuse("agent", "inspect", "c.pth", cwd=tmp_path)
    assert refusal.stderr.strip() == (
        "error: checkpoint does not describe a servable policy: model.actor[0]: 1000000000 is "
        "outside 1..16384\n"
        "  where: c.pth\n"
        "  fix: fix the named field; `netlab agent inspect` shows the layout")


def test_the_bundled_checkpoints_stay_within_budget() -> None:
    from netlab.agent.checkpoints import load_policy

    models = Path(__file__).resolve().parents[2] / "models"
    for path in sorted(models.glob("*.pth")):
        assert load_policy(path).info.parameters > 0


def test_pickle_stays_refused_in_process(tmp_path: Path) -> None:
    """weights_only stays on: the code in the pickle never runs."""
    from netlab.agent.checkpoints import load_policy
    from netlab.errors import NetlabError

    _evil_pickle(tmp_path / "c.pth")
    with pytest.raises(NetlabError, match="refused"):
        load_policy(tmp_path / "c.pth")
    assert pickle  # the module the attack relies on is the one weights_only guards
