"""Reading and writing the release TSV files, including damaged ones.

Writing: tab-separated, `\\n` line ends, header first; a field holding a tab, a newline, a
carriage return or a quote is quoted with `"` doubled (csv QUOTE_MINIMAL, CR included), so any
text round-trips exactly through `csv.reader`.

Reading (`read_table`): bytes are decoded as UTF-8 with U+FFFD for invalid sequences (each
affected line is reported). A file the csv module reads into records of exactly the header's
width is taken as is. Otherwise it is read line by line, where a record starts at a line that
begins with an exp id and a tab (`070\\t`, `exp_070\\t`); the lines in between are
continuations (raw newlines in free text) and are joined back with `\\n`. A record with more
fields than the header (raw tabs in free text) is recovered by anchoring: the free-text columns
(hypothesis, notes) absorb the surplus, and the split is accepted only if every other column
then looks like its kind (a known status, a number, a token without spaces, as learned from the
intact rows). Several valid splits are settled by tree.tsv (status, score, hypothesis) when it
is there; otherwise the row is reported and skipped: a value is never guessed.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

csv.field_size_limit(max(csv.field_size_limit(), 64 * 1024 * 1024))

FREE_TEXT = ("hypothesis", "notes", "failure", "decision")
_START = re.compile(r"^\s*(?:exp_?)?\d{1,9}\t", re.IGNORECASE)
MAX_SPLITS = 20_000  # rows with more candidate splits than this are reported, not recovered


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
    header: list[str]
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


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


def exp_like(text: str) -> bool:
    return bool(re.fullmatch(r"\s*(?:exp_?)?\d{1,9}\s*", text, re.IGNORECASE))


def read_table(path: Path, kinds: Callable[[list[str], list[Record]], list[Callable[[str], bool]]],
               tiebreak: Callable[[list[str], list[list[str]]], list[list[str]]] | None = None) -> Table:
    """Read a release TSV into records of exactly the header's width (see module docstring).

    `kinds(header, intact_records)` returns one validator per column for anchoring;
    `tiebreak(header, candidates)` narrows several valid splits (tree.tsv cross-check).
    """
    problems: list[Problem] = []
    text = decode(path, problems)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=False))
    if not rows or not rows[0] or not any(rows[0]):
        return Table([], [], problems + [Problem(path.name, "header", "the file is empty")])
    header = [h.strip() for h in rows[0]]
    n = len(header)
    body = [r for r in rows[1:] if r and any(x.strip() for x in r)]
    if all(len(r) == n and exp_like(r[0]) for r in body) and _as_written(text, [rows[0], *body]):
        records = [Record(i + 2, r) for i, r in enumerate(body)]  # line numbers approximate here
        return Table(header, records, problems)
    table = Table(header, [], problems)
    groups = _groups(text.split("\n"), table)
    intact = [Record(line, f) for line, f in ((ln, _split_simple(g, n)) for ln, g in groups) if f is not None]
    validators = kinds(header, intact)
    _assemble(groups, n, table, lambda line, text: _one(line, text, n, validators, tiebreak, header))
    return table


def _assemble(groups: list[tuple[int, str]], n: int, table: Table,
              one: Callable[[int, str], Record | None]) -> None:
    """Turn line groups into records; a short group is joined to the following short groups
    (a newline split a record before a digit) or else to the previous record (a newline in
    its last free-text column)."""
    def short(text: str) -> bool:
        return text.count("\t") + 1 < n

    prev: tuple[int, str] | None = None
    i = 0
    while i < len(groups):
        line, group = groups[i]
        record, j = _quoted(groups, i, one)
        if record is None:
            record, j = one(line, group), i + 1
        while record is None and short(group) and j < len(groups) and short(groups[j][1]) and j - i < 50:
            group += "\n" + groups[j][1]
            record, j = one(line, group), j + 1
        if record is None and short(groups[i][1]) and prev is not None:
            line, group, j = prev[0], prev[1] + "\n" + groups[i][1], i + 1
            record = one(line, group)
            if record is not None:
                table.records.pop()
        if record is None:
            table.problems.append(Problem(f"line {groups[i][0]}", "row", _why(groups[i][1], n)))
            prev, i = None, i + 1
            continue
        table.records.append(record)
        if record.tail:
            lines = record.tail.count("\n") + 1
            table.problems.append(Problem(f"line {line}", "row", f"{lines} line(s) after this row belong to no row; skipped"))
        prev, i = (line, group), j


def _quoted(groups: list[tuple[int, str]], i: int,
            one: Callable[[int, str], Record | None]) -> tuple[Record | None, int]:
    """A quoted field left open at the end of group `i` continues in the next groups (a line
    inside it began with digits and a tab): join them until the quote closes."""
    inside = _scan(groups[i][1], False)
    if not inside:
        return None, i + 1
    parts, j = [groups[i][1]], i + 1
    while inside and j < len(groups) and j - i < 10_000:
        parts.append(groups[j][1])
        inside = _scan(groups[j][1], True)
        j += 1
    return (None, i + 1) if inside else (one(groups[i][0], "\n".join(parts)), j)


def _scan(text: str, inside: bool) -> bool:
    """Whether csv quoting is still open at the end of `text` (given the state at its start)."""
    if '"' not in text:
        return inside
    start = not inside
    i = 0
    while i < len(text):
        c = text[i]
        if inside:
            if c == '"' and text[i + 1:i + 2] == '"':
                i += 2
                continue
            inside = c != '"'
        elif c == '"' and start:
            inside = True
        start = c in "\t\n"
        i += 1
    return inside


def _as_written(text: str, rows: list[list[str]]) -> bool:
    """Whether `rows`, quoted again, give back `text`: then the csv reading is certainly right
    (a file written without quoting, e.g. with a field starting with `"`, is read by lines)."""
    if '"' not in text:
        return True
    end = "\r\n" if text.split("\n", 1)[0].endswith("\r") else "\n"
    again = end.join("\t".join(quote(f) for f in r) for r in rows)
    return again == text.rstrip("\r\n")


def _why(group: str, n: int) -> str:
    got = group.count("\t") + 1
    if got < n:
        return f"{got} fields where the header has {n}; not enough to read the row"
    return f"{got} fields where the header has {n}; no unambiguous way to split the free text"


def _groups(lines: list[str], table: Table) -> list[tuple[int, str]]:
    """Physical lines (header first) → (start line, text) per record; continuation lines
    joined with \\n."""
    groups: list[tuple[int, list[str]]] = []
    crlf = bool(lines) and lines[0].endswith("\r")  # the file's own line ends, not CRs in text
    for i, line in enumerate(lines[1:], 2):
        line = line.removesuffix("\r") if crlf else line
        if _START.match(line) or not groups:
            if not _START.match(line):
                if line.strip():
                    table.problems.append(Problem(f"line {i}", "row", "text before the first row; skipped"))
                continue
            groups.append((i, [line]))
        else:
            groups[-1][1].append(line)
    out = []
    for start, parts in groups:
        while len(parts) > 1 and not parts[-1].strip():
            parts.pop()  # blank lines between records are not continuations
        out.append((start, "\n".join(parts)))
    return out


def _split_simple(group: str, n: int) -> list[str] | None:
    fields = group.split("\t")
    if "\n" in group or len(fields) != n or any(f.startswith('"') for f in fields):
        return None
    return fields


def _one(line: int, group: str, n: int, validators: list[Callable[[str], bool]],
         tiebreak: Callable[[list[str], list[list[str]]], list[list[str]]] | None, header: list[str]) -> Record | None:
    raw = group.split("\t")
    joined = f"joined {group.count(chr(10))} continuation line(s)" if "\n" in group else ""
    parsed = list(csv.reader(io.StringIO(group, newline=""), delimiter="\t", strict=False))
    head = "\t".join(quote(f) for f in parsed[0]) if parsed and len(parsed[0]) == n else None
    if head == group:
        return Record(line, parsed[0], "")  # exactly what a quoting writer writes
    if head and '"' in head and group.startswith(head + "\n"):
        return Record(line, parsed[0], "", tail=group[len(head) + 1:])  # stray lines after a quoted row
    if len(raw) == n:
        return Record(line, raw, joined)
    free = sum(1 for h in header if h in FREE_TEXT)
    if len(raw) < n or not free or math.comb(len(raw) - n + free - 1, free - 1) > MAX_SPLITS:
        return None
    candidates = [c for c in _splits(raw, header) if all(ok(v) for ok, v in zip(validators, c, strict=True))]
    how = "anchored on the status and numeric columns"
    if len(candidates) > 1 and tiebreak is not None:
        candidates = tiebreak(header, candidates)
        how += ", settled by tree.tsv"
    if len(candidates) != 1:
        return None
    extra = len(raw) - n
    note = f"{extra} stray tab(s) in free text; {how}" + (f"; {joined}" if joined else "")
    return Record(line, candidates[0], note)


def _splits(raw: list[str], header: list[str]) -> Iterable[list[str]]:
    """Every way to give the surplus fields to the free-text columns (rejoined with tabs)."""
    free = [i for i, h in enumerate(header) if h in FREE_TEXT]
    surplus = len(raw) - len(header)
    if not free:
        return
    for shares in _compositions(surplus, len(free)):
        out, pos = [], 0
        extra = dict(zip(free, shares, strict=True))
        for i in range(len(header)):
            take = 1 + extra.get(i, 0)
            out.append("\t".join(raw[pos:pos + take]))
            pos += take
        yield out


def _compositions(total: int, parts: int) -> Iterable[tuple[int, ...]]:
    """All tuples of `parts` non-negative ints summing to `total` (stars and bars)."""
    for cuts in itertools.combinations(range(total + parts - 1), parts - 1):
        edges = (-1, *cuts, total + parts - 1)
        yield tuple(edges[i + 1] - edges[i] - 1 for i in range(parts))


def read_plain(path: Path, problems: list[Problem]) -> tuple[list[str], list[list[str]]]:
    """A TSV written without quoting (tree.tsv): header and rows split on tabs only."""
    lines = [x.removesuffix("\r") for x in decode(path, problems).split("\n")]
    lines = [x for x in lines if x.strip()]
    if not lines:
        return [], []
    return lines[0].split("\t"), [x.split("\t") for x in lines[1:]]
