"""What is wrong with a scenario file, all of it at once.

Validation never stops at the first mistake: every check appends a
:class:`Problem` to a :class:`ProblemLog`, and :class:`ScenarioInvalid`
renders the whole list in the ``file:line: path: expected ..., found ...``
form that editors and CI logs already know how to jump to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.errors import NetlabError

FIX_HINT = "correct the fields above; 'netlab schema' prints the full schema"


@dataclass(frozen=True)
class Problem:
    """One mistake: where it is (file, line, field path), what was expected, what was found.

    ``line`` is 1-based and ``None`` when no line applies; ``hint`` is an
    optional suggestion such as "did you mean 'delay'?".
    """

    file: str
    line: int | None
    path: str
    expected: str
    found: str
    hint: str | None = None

    def render(self) -> str:
        location = f"{self.file}:{self.line}" if self.line is not None else self.file
        path = self.path or "(document)"
        text = f"{location}: {path}: expected {self.expected}, found {self.found}"
        if self.hint:
            text += f"; {self.hint}"
        return text


@dataclass
class ProblemLog:
    """Collects problems for one scenario file."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        line: int | None,
        path: str,
        expected: str,
        found: str,
        hint: str | None = None,
    ) -> None:
        problem = Problem(self.file, line, path, expected, found, hint)
        if problem not in self.problems:  # a link-level value can fail for both directions
            self.problems.append(problem)

    def __bool__(self) -> bool:
        return bool(self.problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ScenarioInvalid(self.file, self.problems)


def _order(problem: Problem) -> tuple[int, int]:
    return (0, problem.line) if problem.line is not None else (1, 0)


class ScenarioInvalid(NetlabError):
    """A scenario file with one or more problems; nothing has been created."""

    def __init__(self, file: str, problems: list[Problem]) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{file} is not a valid scenario ({count} {noun})",
            where=file,
            fix=FIX_HINT,
        )
        self.file = file
        # Stable sort: by line, keeping discovery order within a line.
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=_order))

    def render(self) -> str:
        lines = [f"error: {self.what}"]
        lines.extend(problem.render() for problem in self.problems)
        lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)
