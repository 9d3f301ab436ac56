"""Reading results.tsv into records of exactly the header's width, putting damaged rows back.

A file the csv module reads into records of the header's width, and that quoting again gives
back, is taken as is. Otherwise it is read line by line. A record starts at a line that begins
with an exp id and a tab (`070\\t`, `exp_070\\t`); the lines in between are continuations (raw
newlines in free text), joined back with `\\n`. A line that begins with an exp id, a tab and a
timestamp (`ROW_START`) is always a row of its own: never joined to another row, never swallowed
by a quote left open.

Damaged records are put back by anchoring: the free-text columns (hypothesis, notes, failure,
decision) take one piece or more, every other column exactly one piece that looks like its kind
(a known status, a number, a token without spaces, as learned from the intact rows), and free
text never holds the start of another row. The pieces are
  - the tab-separated fields of a record with too many (raw tabs in free text), or
  - for a record with too few, the space-separated words of a free-text cell that swallowed
    the later columns, their tabs turned to spaces (the damage in one of the published runs).
`check` (tree.tsv) keeps the readings that agree with the row's tree.tsv line when it has one.
One reading left: the record, with how it was recovered. None, or several: the row is listed in
`Table.lost` with why, and its text is never moved into a neighbouring row. A value is never
guessed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from lineage._tsv import FREE_TEXT, Problem, Record, Table, decode, exp_like, parse_exp, quote, row_start

Validator = Callable[[str], bool]
Kinds = Callable[[list[str], list[Record]], list[Validator]]
Check = Callable[[list[str], list[list[str]]], list[list[str]]]
One = Callable[[int, str], "Record | str"]
MAX_STEPS = 200_000  # readings of one record explored at most; past this it is listed, not recovered


def read_table(path: Path, kinds: Kinds, check: Check | None = None) -> Table:
    """Read a results.tsv into records of exactly the header's width (see the module docstring).

    `kinds(header, intact_records)` returns one validator per column for anchoring;
    `check(header, readings)` keeps the readings of a damaged row that tree.tsv agrees with.
    """
    problems: list[Problem] = []
    text = decode(path, problems)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=False)
    rows: list[tuple[int, list[str], int]] = []  # (first line, fields, last line) of each csv record
    for r in reader:
        rows.append((rows[-1][2] + 1 if rows else 1, r, reader.line_num))
    if not rows or not rows[0][1] or not any(rows[0][1]):
        return Table([], [], problems + [Problem(path.name, "header", "the file is empty")])
    header = [h.strip() for h in rows[0][1]]
    n = len(header)
    body = [(line, r) for line, r, _ in rows[1:] if r and any(x.strip() for x in r)]
    if all(len(r) == n and exp_like(r[0]) for _, r in body) and _as_written(text, [rows[0][1], *(r for _, r in body)]):
        return Table(header, [Record(line, r) for line, r in body], problems,
                     row_ids={e for _, r in body if (e := parse_exp(r[0])) is not None})
    table = Table(header, [], problems)
    groups = _groups(text.split("\n"), table)
    table.row_ids = {e for _, g in groups if row_start(g) and (e := parse_exp(g.split("\t", 1)[0])) is not None}
    intact = [Record(line, f) for line, f in ((ln, _split_simple(g, n)) for ln, g in groups) if f is not None]
    validators = kinds(header, intact)
    _assemble(groups, n, table, path.name, lambda line, g: _one(line, g, header, validators, check))
    table.row_ids |= {e for r in table.records if (e := parse_exp(r.fields[0])) is not None}
    return table


def _assemble(groups: list[tuple[int, str]], n: int, table: Table, name: str, one: One) -> None:
    """Turn line groups into records. A short group is joined to the following short groups (a
    newline split a record before a digit), or else to the previous record (a newline in its
    last free-text column); a row start is never the group joined. A group read no way is lost."""
    def short(text: str) -> bool:
        return text.count("\t") + 1 < n

    prev: tuple[int, str] | None = None
    i = 0
    while i < len(groups):
        line, group = groups[i]
        got, j = _quoted(groups, i, one)
        if got is None:
            got, j = one(line, group), i + 1
        why = got
        while isinstance(got, str) and short(group) and j < len(groups) and j - i < 50 \
                and short(groups[j][1]) and not row_start(groups[j][1]):
            group += "\n" + groups[j][1]
            got, j = one(line, group), j + 1
        if isinstance(got, str) and short(groups[i][1]) and not row_start(groups[i][1]) and prev is not None:
            back = one(prev[0], prev[1] + "\n" + groups[i][1])
            if isinstance(back, Record):
                table.records.pop()
                line, group, got, j = prev[0], prev[1] + "\n" + groups[i][1], back, i + 1
        if not isinstance(got, Record):
            exp = parse_exp(groups[i][1].split("\t", 1)[0])
            label = f"line {groups[i][0]}" if exp is None else f"exp {exp:03d}"
            table.lost.append((exp, Problem(label, f"{name} line {groups[i][0]}", str(why))))
            prev, i = None, i + 1
            continue
        table.records.append(got)
        if got.tail:
            lines = got.tail.count("\n") + 1
            table.problems.append(Problem(f"line {line}", "row",
                                          f"{lines} line(s) after this row belong to no row; skipped"))
        prev, i = (line, group), j


def _quoted(groups: list[tuple[int, str]], i: int, one: One) -> tuple[Record | None, int]:
    """A quoted field left open at the end of group `i` continues in the next groups (a line
    inside it began with digits and a tab): join them until the quote closes, never across a
    row start."""
    inside = _scan(groups[i][1], False)
    if not inside:
        return None, i + 1
    parts, j = [groups[i][1]], i + 1
    while inside and j < len(groups) and j - i < 10_000 and not row_start(groups[j][1]):
        parts.append(groups[j][1])
        inside = _scan(groups[j][1], True)
        j += 1
    if inside:
        return None, i + 1
    got = one(groups[i][0], "\n".join(parts))
    return (got, j) if isinstance(got, Record) else (None, i + 1)


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


def _groups(lines: list[str], table: Table) -> list[tuple[int, str]]:
    """Physical lines (header first) → (start line, text) per record; continuation lines
    joined with \\n."""
    groups: list[tuple[int, list[str]]] = []
    crlf = bool(lines) and lines[0].endswith("\r")  # the file's own line ends, not CRs in text
    for i, line in enumerate(lines[1:], 2):
        line = line.removesuffix("\r") if crlf else line
        starts = row_start(line) or ("\t" in line and exp_like(line.split("\t", 1)[0]))
        if starts or not groups:
            if not starts:
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


def _one(line: int, group: str, header: list[str], validators: list[Validator], check: Check | None) -> Record | str:
    """`group` read as one record, or why it cannot be."""
    n, raw = len(header), group.split("\t")
    joined = f"joined {group.count(chr(10))} continuation line(s)" if "\n" in group else ""
    parsed = list(csv.reader(io.StringIO(group, newline=""), delimiter="\t", strict=False))
    head = "\t".join(quote(f) for f in parsed[0]) if parsed and len(parsed[0]) == n else None
    if head == group:
        return Record(line, parsed[0], "")  # exactly what a quoting writer writes
    if head and '"' in head and group.startswith(head + "\n"):
        return Record(line, parsed[0], "", tail=group[len(head) + 1:])  # stray lines after a quoted row
    if len(raw) == n:
        return Record(line, raw, joined)
    if len(raw) < n:
        return _flattened(line, group, header, validators, check)
    found = _anchor(raw, header, validators, "\t")
    if found is None:
        return f"{len(raw)} fields where the header has {n}; too many ways to split the free text to try"
    picked = check(header, found) if check and found else found
    if len(picked) != 1:
        return _why(len(raw), n, found, picked, "the free text")
    how = "anchored on the status and numeric columns" + (", settled by tree.tsv" if len(found) > 1 else "")
    note = f"{len(raw) - n} stray tab(s) in free text; {how}" + (f"; {joined}" if joined else "")
    return Record(line, picked[0], note)


def _flattened(line: int, group: str, header: list[str], validators: list[Validator],
               check: Check | None) -> Record | str:
    """A record with too few fields whose free-text cell swallowed the later columns, their tabs
    turned to spaces: the cell's words are anchored, and the whole row must read as its kinds."""
    n, cells = len(header), _cells(group)
    found: list[list[str]] = []
    where = ""
    span = n - len(cells) + 1
    for k, text in enumerate(cells):
        if k >= n or header[k] not in FREE_TEXT:
            continue
        for mid in _anchor(text.split(" "), header[k:k + span], validators[k:k + span], " ") or []:
            row = [*cells[:k], *mid, *cells[k + 1:]]
            if row not in found and all(ok(v) for ok, v in zip(validators, row, strict=True)):
                found.append(row)
                where = header[k]
    picked = check(header, found) if check and found else found
    if len(picked) != 1:
        what = f"the later columns flattened into its {where} (tabs turned to spaces)" if found else ""
        return _why(len(cells), n, found, picked, what)
    return Record(line, picked[0], f"its later columns were flattened into its {where} (tabs turned to spaces); "
                                   "read back from that text, anchored on the status and numeric columns")


def _why(got: int, n: int, found: list[list[str]], picked: list[list[str]], what: str) -> str:
    base = f"{got} fields where the header has {n}"
    if not found:
        return f"{base}; not enough to read the row" if got < n else f"{base}; no way to split the free text " \
            "so that the other columns read as their kinds"
    if not picked:
        return f"{base}; no reading of {what} agrees with tree.tsv (status, score, hypothesis)"
    return f"{base}; no unambiguous way to split {what}: {len(picked)} readings remain"


def _cells(group: str) -> list[str]:
    """`group` split on the tabs outside quotes; a quoted cell loses its outer quotes and reads
    `""` as `"`, and a quote that neither doubles nor closes the cell is kept as written."""
    out: list[str] = []
    buf: list[str] = []
    quoted, start, i = False, True, 0
    while i < len(group):
        c, nxt = group[i], group[i + 1:i + 2]
        if start and c == '"':
            quoted = True
        elif quoted and c == '"' and nxt == '"':
            buf.append(c)
            i += 1
        elif quoted and c == '"' and nxt in ("\t", ""):
            quoted = False
        elif c == "\t" and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(c)
        start = c == "\t" and not quoted
        i += 1
    out.append("".join(buf))
    return out


def _anchor(pieces: list[str], header: list[str], validators: list[Validator], sep: str) -> list[list[str]] | None:
    """Every reading of `pieces` as the columns of `header`: a free-text column takes one piece or
    more (joined with `sep`), any other exactly one, and each value passes its validator. None
    when there are more than MAX_STEPS ways to try (the row is then listed, not guessed)."""
    out: list[list[str]] = []
    budget = [MAX_STEPS]

    def walk(col: int, pos: int, acc: list[str]) -> bool:
        budget[0] -= 1
        if budget[0] < 0:
            return False
        if col == len(header):
            if pos == len(pieces):
                out.append(list(acc))
            return True
        most = len(pieces) - pos - (len(header) - col - 1)
        if header[col] not in FREE_TEXT:
            most = min(most, 1)
        takes = range(max(most, 1), most + 1) if col == len(header) - 1 else range(1, most + 1)
        for take in takes:
            value = sep.join(pieces[pos:pos + take])
            if validators[col](value):
                acc.append(value)
                ok = walk(col + 1, pos + take, acc)
                acc.pop()
                if not ok:
                    return False
        return True

    return out if walk(0, 0, []) else None
