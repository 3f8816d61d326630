"""Hostile scenario files: YAML bombs, huge files, deep nesting, absurd values and
wrong types are refused at their line, quickly, within 4 GiB, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.conftest import refuse

HEAD = "name: hostile\nduration: 10s\nhosts: [a, b]\n"


def _laughs(levels: int, at: str) -> str:
    lines = ["x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{HEAD}{at}: *x{levels - 1}\n"


def _merges(levels: int) -> str:
    """Each level merges the one below twice (exponential with PyYAML < 6.0.3)."""
    lines = ["m0: &m0 {rate: 1Mbit, delay: 1ms}"]
    lines += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: {i}}}" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{HEAD}links:\n  - endpoints: [a, b]\n    up: *m{levels - 1}\n"


def _wide_merges(levels: int) -> str:
    """Distinct keys at every level, aliased ten times: a billion laughs of mappings."""
    lines = ["w0: &w0 {a0: 1, b0: 2}"]
    lines += [f"w{i}: &w{i} [" + ", ".join([f"*w{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\n{HEAD}flows: *w{levels - 1}\n"


CASES: dict[str, tuple[str, str]] = {
    # name: (scenario text, text the error must contain)
    "billion-laughs-hosts": (_laughs(9, "extra"), "expand"),
    "billion-laughs-flows": (_laughs(7, "flows"), "expand"),
    "nested-merges": (_merges(30), "s.yaml:"),
    "wide-merges": (_wide_merges(8), "expand"),
    "self-alias": (HEAD + "links: &l [*l]\n", "contain themselves"),
    "self-merge": (HEAD + "links:\n  - endpoints: [a, b]\n    up: &u {<<: *u}\n",
                   "contain themselves"),
    "deep-flow-lists": ("name: x\nduration: 1s\nhosts: " + "[" * 5000 + "]" * 5000 + "\n",
                        "nesting"),
    "deep-block-maps": (HEAD + "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200
                        + "v: 1\n", "nesting"),
    "deep-flow-maps": (HEAD + "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "nesting"),
    "duration-centuries": ("name: x\nduration: 99999999h\nhosts: [a, b]\n", "s.yaml:2"),
    "delay-a-day": (HEAD + "links:\n  - endpoints: [a, b]\n    delay: 24h\n", "s.yaml:6"),
    "rate-absurd": (HEAD + "links:\n  - endpoints: [a, b]\n    rate: 99999999999Gbit\n",
                    "s.yaml:6"),
    "queue-absurd": (HEAD + "links:\n  - endpoints: [a, b]\n    queue: 99999999999999pkt\n",
                     "s.yaml:6"),
    "queue-bytes-absurd": (HEAD + "links:\n  - endpoints: [a, b]\n    queue: 999999GB\n",
                           "s.yaml:6"),
    "seed-huge": (HEAD + "seed: 99999999999999999999999999\n", "s.yaml:4"),
    "number-1e300": (HEAD + "links:\n  - endpoints: [a, b]\n    rate: 1e300Mbit\n", "s.yaml:6"),
    "duration-list": ("name: x\nduration: [1, 2]\nhosts: [a, b]\n", "s.yaml:2"),
    "hosts-mapping-of-lists": ("name: x\nduration: 1s\nhosts: {a: [1, 2]}\n", "s.yaml:3"),
    "python-tag": (HEAD + "seed: !!python/object/apply:os.system ['true']\n", "s.yaml:4"),
    "binary-bytes": ("name: x\x00\x01\x02\nduration: 1s\n", "s.yaml"),
    "not-utf8": ("name: caf\udce9\n", "s.yaml"),
    "empty": ("", "s.yaml"),
    "a-list": ("- 1\n- 2\n", "s.yaml"),
    "many-hosts": ("name: x\nduration: 1s\nhosts: [" + ", ".join(f"h{i}" for i in range(5000))
                   + "]\n", "s.yaml:3"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_scenario_is_refused(case: str, tmp_path: Path) -> None:
    text, where = CASES[case]
    (tmp_path / "s.yaml").write_bytes(text.encode("utf-8", errors="surrogateescape"))
    refusal = refuse("validate", "s.yaml", cwd=tmp_path)
    assert where in refusal.stdout + refusal.stderr, refusal.stderr


def test_huge_scenario_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with open(path, "wb") as f:
        f.write(HEAD.encode())
        f.truncate(5 << 30)  # 5 GiB, sparse: reading it whole would not fit in 4 GiB
    refusal = refuse("validate", "s.yaml", cwd=tmp_path)
    assert "over 1 MiB" in refusal.stderr


def test_endless_scenario_file_is_refused(tmp_path: Path) -> None:
    refusal = refuse("validate", "/dev/zero", cwd=tmp_path)
    assert "/dev/zero" in refusal.stderr


def test_golden_billion_laughs(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(_laughs(9, "extra"))
    refusal = refuse("validate", "s.yaml", cwd=tmp_path)
    assert refusal.stderr.strip() == (
        "error: s.yaml is not a valid scenario (1 problem)\n"
        "s.yaml:6: (document): expected at most 200000 values and 32 levels once anchors "
        "(*alias, <<) are expanded, found a node that expands to 1111111 nodes; write the "
        "scenario out plainly; anchors and merges are for sharing a few specs\n"
        "  fix: correct the fields above; 'netlab schema' prints the full schema")


def test_golden_absurd_delay(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(HEAD + "links:\n  - endpoints: [a, b]\n    delay: 24h\n")
    refusal = refuse("validate", "s.yaml", cwd=tmp_path)
    assert refusal.stderr.strip() == (
        "error: s.yaml is not a valid scenario (1 problem)\n"
        "s.yaml:6: links[0].delay: expected a delay of at most 60s, found '24h'\n"
        "  fix: correct the fields above; 'netlab schema' prints the full schema")


def test_finetune_config_bomb_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(_laughs(9, "extra"))
    refusal = refuse("finetune", "c.yaml", cwd=tmp_path)
    assert "c.yaml:6" in refusal.stderr
