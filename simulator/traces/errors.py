"""The one exception a trace loader raises for a file it cannot turn into a :class:`Trace`.

Trace files come from outside (public datasets, users' own exports), so a bad file is an expected
outcome, not a bug. Every loader translates what goes wrong — a missing file, a broken gzip stream,
a pandas tokenizer error, a JSON syntax error, a negative token count — into this single type whose
message points at the exact place to fix::

    traces/my.csv:17: not a number (column 'input_tokens' value 'abc')

so a user never has to read a pandas or ``json`` traceback to find row 17.
"""

from __future__ import annotations

from pathlib import Path

_MAX_VALUE_CHARS = 60


class TraceFormatError(ValueError):
    """A trace file is missing, of an unknown format, or has a malformed or out-of-range value.

    Attributes:
        path: the file, as given by the caller.
        line: 1-based line of the file the problem is on (the header is line 1 of a CSV);
            ``None`` when the problem concerns the whole file (e.g. it does not exist).
        reason: what is wrong, in words.
        column: the column (CSV) or key (JSONL) holding the bad value, if any.
        value: the offending raw text, if any.
    """

    def __init__(
        self,
        path: str | Path,
        reason: str,
        *,
        line: int | None = None,
        column: str | None = None,
        value: object | None = None,
    ) -> None:
        self.path = str(path)
        self.reason = reason
        self.line = line
        self.column = column
        self.value = None if value is None else str(value)
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        detail = ""
        if self.column is not None and self.value is not None:
            detail = f" (column {self.column!r} value {_clip(self.value)!r})"
        elif self.column is not None:
            detail = f" (column {self.column!r})"
        elif self.value is not None:
            detail = f" (value {_clip(self.value)!r})"
        return f"{where}: {self.reason}{detail}"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes are not in ``args``; rebuild them explicitly when pickled.
        return (
            _rebuild,
            (self.path, self.reason, self.line, self.column, self.value),
        )


def _rebuild(
    path: str, reason: str, line: int | None, column: str | None, value: str | None
) -> TraceFormatError:
    return TraceFormatError(path, reason, line=line, column=column, value=value)


def _clip(value: str) -> str:
    return value if len(value) <= _MAX_VALUE_CHARS else value[: _MAX_VALUE_CHARS - 3] + "..."
