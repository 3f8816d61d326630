"""Every command module loads and describes itself (``netlab --help``)."""

from __future__ import annotations

import subprocess
import sys

from netlab.cli.main import COMMAND_MODULES, command_name


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "netlab.cli.main", "--help"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    for module in COMMAND_MODULES:
        assert command_name(module) in out


def test_each_command_has_help() -> None:
    for module in COMMAND_MODULES:
        subprocess.run([sys.executable, "-m", "netlab.cli.main", command_name(module), "--help"],
                       capture_output=True, text=True, check=True, timeout=120)
