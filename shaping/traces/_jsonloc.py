"""JSON parsing that remembers the line of every value.

The standard library's decoder gives positions only for syntax errors; trace
errors must name the line of a bad entry too ("file:line"). The pure-Python
scanner calls back into the decoder for each object and array, so wrapping
those callbacks records where each member starts. Objects keep duplicate keys
visible (they are errors in a trace, not "last one wins").
"""

from __future__ import annotations

import bisect
import json
import json.decoder
import json.scanner
from collections.abc import Callable
from typing import Any, cast

from shaping.traces.errors import TraceError

_ScanOnce = Callable[[str, int], tuple[Any, int]]


class LocatedDict(dict[str, Any]):
    """A JSON object plus the line where it and each of its values start."""

    line: int
    key_lines: dict[str, int]


class LocatedList(list[Any]):
    """A JSON array plus the line where it and each of its items start."""

    line: int
    item_lines: list[int]


_json_object = cast(Callable[..., tuple[Any, int]], json.decoder.JSONObject)  # type: ignore[attr-defined]
_json_array = cast(Callable[..., tuple[Any, int]], json.decoder.JSONArray)  # type: ignore[attr-defined]
_py_make_scanner = cast(Callable[[Any], _ScanOnce], json.scanner.py_make_scanner)  # type: ignore[attr-defined]


class _LocatingDecoder(json.JSONDecoder):
    def __init__(self, text: str, file: str) -> None:
        super().__init__()
        self._file = file
        self._line_starts = [0]
        self._line_starts.extend(i + 1 for i, char in enumerate(text) if char == "\n")
        # The attributes the pure-Python scanner reads from its context.
        self.parse_object = self._parse_object
        self.parse_array = self._parse_array
        self.memo: dict[str, str] = {}
        self.scan_once = _py_make_scanner(self)

    def line_of(self, index: int) -> int:
        return bisect.bisect_right(self._line_starts, index)

    def _recording(self, scan_once: _ScanOnce, starts: list[int]) -> _ScanOnce:
        def scan(string: str, index: int) -> tuple[Any, int]:
            starts.append(index)
            return scan_once(string, index)

        return scan

    def _parse_object(
        self,
        s_and_end: tuple[str, int],
        strict: bool,
        scan_once: _ScanOnce,
        object_hook: object,
        object_pairs_hook: object,
        memo: dict[str, str] | None = None,
    ) -> tuple[LocatedDict, int]:
        _text, start = s_and_end
        starts: list[int] = []
        pairs, end = _json_object(
            s_and_end, strict, self._recording(scan_once, starts), None, list, memo
        )
        result = LocatedDict()
        result.line = self.line_of(start - 1)
        result.key_lines = {}
        for (key, value), value_start in zip(pairs, starts, strict=True):
            line = self.line_of(value_start)
            if key in result:
                raise TraceError(
                    f"key {key!r} appears twice in one object",
                    file=self._file,
                    line=line,
                    fix="keep one of the two entries",
                )
            result[key] = value
            result.key_lines[key] = line
        return result, end

    def _parse_array(
        self, s_and_end: tuple[str, int], scan_once: _ScanOnce
    ) -> tuple[LocatedList, int]:
        _text, start = s_and_end
        starts: list[int] = []
        values, end = _json_array(s_and_end, self._recording(scan_once, starts))
        result = LocatedList(values)
        result.line = self.line_of(start - 1)
        result.item_lines = [self.line_of(index) for index in starts[: len(values)]]
        return result, end


def load_located_json(text: str, file: str) -> Any:
    """Parse ``text``; objects and arrays come back as Located* containers."""
    decoder = _LocatingDecoder(text, file)
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise TraceError(
            f"not valid JSON: {exc.msg} (column {exc.colno})",
            file=file,
            line=exc.lineno,
            fix="repair the JSON syntax at that position",
        ) from None
    except RecursionError:
        raise TraceError(
            "JSON nested too deeply", file=file, fix="a trace file has at most three levels"
        ) from None
