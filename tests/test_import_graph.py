"""The package layering, read from the source with ``ast`` (imports inside functions too).

``labcore`` is the bottom layer and imports none of the three packages;
``shaping`` and ``endpoints`` import ``labcore`` but never ``netlab`` and never
each other, so each can be used as a library on its own; ``netlab`` may import
them all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("labcore", "netlab", "shaping", "endpoints")
FORBIDDEN = {
    "labcore": {"netlab", "shaping", "endpoints"},
    "shaping": {"netlab", "endpoints"},
    "endpoints": {"netlab", "shaping"},
    "netlab": set(),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False
                     ) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in ``source`` (the text of
    ``module``), relative ones resolved, plus ``importlib.import_module("...")``
    calls with a literal name."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "import_module"))):
            yield node.lineno, node.args[0].value


def file_imports(path: Path) -> Iterator[tuple[int, str]]:
    return imported_modules(path.read_text(encoding="utf-8"), _module_name(path),
                            is_package=path.name == "__init__.py")


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in file_imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package]:
                found.append(f"{path.relative_to(REPO)}:{line}: imports {module}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_a_layer_above_it(package: str) -> None:
    assert violations(package) == []


def test_the_bottom_layer_is_what_all_three_import() -> None:
    """labcore is really used from each package (else the layering test guards nothing)."""
    for package in ("netlab", "shaping", "endpoints"):
        tops = {module.split(".")[0] for path in (REPO / package).rglob("*.py")
                for _, module in file_imports(path)}
        assert "labcore" in tops, package


def test_the_checker_sees_relative_function_level_and_dynamic_imports() -> None:
    """The checker itself: each kind of import it must catch."""
    source = (
        "from . import wiring\n"
        "from ..spec import LinkShape\n"
        "def f():\n"
        "    import netlab.errors\n"
        "    importlib.import_module('endpoints.rtc')\n"
    )
    seen = [name for _, name in imported_modules(source, "shaping.userlink.example")]
    assert seen == ["shaping.userlink", "shaping.spec", "netlab.errors", "endpoints.rtc"]
    in_init = [name for _, name in imported_modules("from .x import y\n", "shaping.userlink",
                                                      is_package=True)]
    assert in_init == ["shaping.userlink.x"]
