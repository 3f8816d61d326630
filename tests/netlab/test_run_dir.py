"""Run directories: one per run, even for runs that start in the same second."""

from __future__ import annotations

import threading
from pathlib import Path

from netlab.run.results import new_run_dir


def test_runs_started_at_once_each_get_their_own_folder(tmp_path: Path) -> None:
    """Two ``up``s of one scenario start in the same second; each must get its own
    folder, where looking before making one let both pick the same name and the
    loser die with FileExistsError."""
    made: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def make() -> None:
        start.wait()
        try:
            made.append(new_run_dir(tmp_path / "runs", "lab"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(set(made)) == 8 and all(path.is_dir() and path.is_absolute() for path in made)
