"""The release TSV files: writing them, decoding them, and what reading them yields.

Writing: tab-separated, `\\n` line ends, header first; a field holding a tab, a newline, a
carriage return or a quote is quoted with `"` doubled (csv QUOTE_MINIMAL, CR included), so any
text round-trips exactly through `csv.reader`. Bytes are read as UTF-8 with U+FFFD for invalid
sequences (each affected line is reported). results.tsv, which may be damaged, is read by
`lineage/_release_rows.py` into a `Table`; tree.tsv, written without quoting, by `read_plain`.
A line whose first cell is followed by a timestamp (`ROW_START`) is the start of a row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))

FREE_TEXT = ("hypothesis", "notes", "failure", "decision")
_EXP = re.compile(r"\s*(?:exp_?)?(\d{1,9})\s*", re.IGNORECASE)
_TIME = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}"
ROW_START = re.compile(r"^[^\t\n]{0,40}\t\s*" + _TIME)  # an exp id (or what is left of one), a tab, a time
_ROW_INSIDE = re.compile(r"(?:\d|\n[^\t\n]{0,40})\t\s*" + _TIME)


@dataclass(frozen=True)
class Problem:
    """Something the import could not read, or read with a caveat."""

    row: str  # "line 12" or "exp 070"
    field: str
    why: str


@dataclass
class Record:
    line: int  # physical line where the record starts (1-based)
    fields: list[str]
    recovered: str = ""  # how the record was put back together, if it was
    tail: str = ""  # stray text that followed the record and was skipped


@dataclass
class Table:
    """results.tsv read: its records, the rows it could not read, and what else went wrong."""

    header: list[str]
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    lost: list[tuple[int | None, Problem]] = field(default_factory=list)  # (exp id, why) of rows not read
    row_ids: set[int] = field(default_factory=set)  # exp ids the file holds rows for (row starts, records)


def parse_exp(text: str) -> int | None:
    """The number of an exp id written as `070`, `70` or `exp_070`; None for anything else."""
    m = _EXP.fullmatch(text or "")
    return int(m.group(1)) if m else None


def exp_like(text: str) -> bool:
    return parse_exp(text) is not None


def row_start(line: str) -> bool:
    """Whether `line` begins a row: a first cell (an exp id, or what is left of one), a tab and
    a timestamp."""
    return bool(ROW_START.match(line))


def holds_row_start(text: str) -> bool:
    """Whether free text holds the start of another row: a timestamp cell after an exp id's
    digits (two rows run together) or after a line's first cell (a row taken for a continuation)."""
    return bool(_ROW_INSIDE.search(text))


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def utf8_safe(value: str) -> str:
    """`value` with lone surrogates (which UTF-8 cannot encode) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


_QUOTED = re.compile('[\t\n\r"]')


def quote(value: str) -> str:
    """A TSV cell: quoted (with `"` doubled) when it holds a tab, newline, CR or quote."""
    if not value.isascii():
        value = utf8_safe(value)
    if _QUOTED.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_tsv(path: Path, header: list[str], rows: Iterable[list[str]]) -> int:
    """Write a quoted TSV (header first, `\\n` line ends); returns the number of data rows.

    The csv module's QUOTE_MINIMAL would leave a lone CR unquoted with `\\n` line ends, so
    quoting is done here: the same rule, with CR included. `csv.reader` reads it back exactly.
    """
    n = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("\t".join(quote(h) for h in header) + "\n")
        for row in rows:
            fh.write("\t".join(quote(c) for c in row) + "\n")
            n += 1
    return n


def decode(path: Path, problems: list[Problem]) -> str:
    """UTF-8 text of `path`; invalid bytes become U+FFFD and each such line is reported."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        for i, line in enumerate(raw.split(b"\n"), 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(Problem(f"{path.name} line {i}", "encoding", "invalid UTF-8 replaced by U+FFFD"))
    return text.removeprefix("\ufeff")


def read_plain(path: Path, problems: list[Problem]) -> tuple[list[str], list[list[str]]]:
    """A TSV written without quoting (tree.tsv): header and rows split on tabs only."""
    lines = [x.removesuffix("\r") for x in decode(path, problems).split("\n")]
    lines = [x for x in lines if x.strip()]
    if not lines:
        return [], []
    return lines[0].split("\t"), [x.split("\t") for x in lines[1:]]
