"""Entry point: collects the subcommand modules and dispatches to one.

Each subcommand lives in its own module exposing ``NAME``, ``HELP``,
``configure(parser)`` and ``run(args) -> int``; adding a command is adding a
module to ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import signal
import sys
from collections.abc import Sequence
from types import ModuleType

from labcore.errors import LabError
from netlab import __version__

STACKS_SIGNAL = signal.SIGUSR2

COMMAND_MODULES: tuple[str, ...] = (
    "up",
    "run",
    "down",
    "status",
    "exec_",
    "check",
    "validate",
    "schema",
    "doctor",
    "traces",
    "report",
    "agent",
    "vagrant",
    "finetune",
    "eval",
    "sim",
    "pretrain",
    "gap",
    "headline",
    "plugin",
)


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"netlab.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"netlab.cli.{name}":
            return None  # command not built yet
        raise


def command_name(module_name: str) -> str:
    return module_name.rstrip("_")  # exec_ -> exec


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command's module is imported, so
    ``netlab up`` does not pay for torch or matplotlib it never uses."""
    parser = argparse.ArgumentParser(
        prog="netlab",
        description="A Linux network lab for congestion-control research.",
    )
    parser.add_argument("--version", action="version", version=f"netlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        if only is not None and command_name(module_name) != only:
            continue
        module = _load(module_name)
        if module is None:
            continue
        text = module.HELP.replace("%", "%%")  # argparse formats help strings with %
        command = sub.add_parser(module.NAME, help=text, description=module.HELP)  # not %-formatted
        module.configure(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; no traceback ever reaches the user (see ``internal_error``)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # 'kill -USR2 PID' prints where a stuck netlab is, every thread
        faulthandler.register(STACKS_SIGNAL, all_threads=True)
    try:
        return _dispatch(words)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # anything not a LabError is a bug: log it, say where
        return internal_error(exc, words)
    finally:
        if argv is None:  # the program itself: its work is done, let it exit quietly
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)


def internal_error(exc: BaseException, words: list[str]) -> int:
    """One line for the user, the traceback in a log file they can attach."""
    from netlab.lab import crashlog

    summary = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    try:
        where = str(crashlog.write(exc, words))
    except OSError:
        where = "the output above"
        import traceback

        traceback.print_exception(exc)
    print(f"internal error: {summary} — please report it with {where}", file=sys.stderr)
    return 70  # EX_SOFTWARE


def _dispatch(words: list[str]) -> int:
    first = next((w for w in words if not w.startswith("-")), None)
    known = {command_name(m) for m in COMMAND_MODULES}
    parser = build_parser(first if first in known else None)
    args = parser.parse_args(words)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
    except LabError as exc:  # the one base: netlab's, shaping's and endpoints' errors alike
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
