"""Value checks shared by the JSON and text readers, each failing with file:line."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from shaping.traces._jsonloc import LocatedDict, LocatedList
from shaping.traces.budgets import UNIT_FIXES, UNIT_MAXIMA
from shaping.traces.errors import TraceError


def number(
    value: object,
    *,
    what: str,
    file: str,
    line: int | None,
    minimum: float | None = 0.0,
    maximum: float | None = None,
    positive: bool = False,
    unit: str = "",
) -> float:
    """A finite JSON/text number within bounds, else a TraceError naming the field.

    A field with a known ``unit`` and no ``maximum`` is held to its budget
    (``budgets.UNIT_MAXIMA``)."""
    budget_fix = ""
    if maximum is None and unit in UNIT_MAXIMA:
        maximum, budget_fix = UNIT_MAXIMA[unit], f"; {UNIT_FIXES[unit]}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceError(
            f"{what} must be a number{f' in {unit}' if unit else ''}, not {value!r}",
            file=file,
            line=line,
            fix=f"write {what} as a plain number",
        )
    result = float(value)
    if not math.isfinite(result):
        raise TraceError(
            f"{what} must be finite, not {value!r}",
            file=file,
            line=line,
            fix="write a finite number",
        )
    if positive and result <= 0:
        raise TraceError(
            f"{what} is {value!r}: zero length is not allowed",
            file=file,
            line=line,
            fix=f"give {what} a value > 0 (or delete the entry)",
        )
    if minimum is not None and result < minimum:
        raise TraceError(
            f"{what} is {value!r}, below the minimum {minimum:g}",
            file=file,
            line=line,
            fix=f"use a value >= {minimum:g}",
        )
    if maximum is not None and result > maximum:
        raise TraceError(
            f"{what} is {value!r}, above the maximum {maximum:g}"
            + (f" ({unit})" if budget_fix else ""),
            file=file,
            line=line,
            fix=f"use a value <= {maximum:g}"
            + (" (a fraction, not a percentage)" if maximum == 1 else "")
            + budget_fix,
        )
    return result


def text_number(token: str, *, what: str, file: str, line: int, unit: str = "") -> float:
    """A number from a text file, with the line in the error."""
    try:
        value = float(token)
    except ValueError:
        raise TraceError(
            f"{what} {token[:40]!r} is not a number",
            file=file,
            line=line,
            fix="write plain decimal numbers",
        ) from None
    return number(value, what=what, file=file, line=line, minimum=0.0, unit=unit)


def obj(value: object, *, what: str, file: str, line: int | None) -> LocatedDict:
    if not isinstance(value, LocatedDict):
        raise TraceError(
            f"{what} must be a JSON object, not {type(value).__name__}",
            file=file,
            line=line,
            fix=f"write {what} as {{...}}",
        )
    return value


def array(value: object, *, what: str, file: str, line: int | None) -> LocatedList:
    if not isinstance(value, LocatedList):
        raise TraceError(
            f"{what} must be a JSON array, not {type(value).__name__}",
            file=file,
            line=line,
            fix=f"write {what} as [...]",
        )
    return value


def known_keys(mapping: LocatedDict, allowed: Iterable[str], *, where: str, file: str) -> None:
    allowed_set = set(allowed)
    for key in mapping:
        if key not in allowed_set:
            raise TraceError(
                f"unknown key {key!r} in {where}",
                file=file,
                line=mapping.key_lines.get(key, mapping.line),
                fix=f"allowed keys are {', '.join(sorted(allowed_set))} (check the spelling)",
            )


def required(
    mapping: Mapping[str, object], key: str, *, where: str, file: str, line: int
) -> object:
    if key not in mapping:
        raise TraceError(
            f"{where} lacks the required key {key!r}", file=file, line=line, fix=f"add {key!r}"
        )
    return mapping[key]
