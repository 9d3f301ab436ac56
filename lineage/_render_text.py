"""Text helpers of the views: number formats, markdown-neutral free text, budgeted sections.

Free text (hypotheses, notes, specialist names) is untrusted: `clean` makes it one bounded
line that cannot open a heading, a quote, a list, a code span, an HTML block or a table cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lineage.models import Search, Trial

HYPOTHESIS_CHARS = 160
NOTE_CHARS = 160
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")
_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "`": "\\`"})
_TAG = re.compile(r"<(?=[A-Za-z/!?])")  # what could open an HTML tag or comment
_LEADING = ("#", ">", "-", "+", "*", "=", "~", "_")


def exp_code(exp_id: int, width: int = 3) -> str:
    """The exp id as the release files write it: zero-padded to `width` (3) digits."""
    return f"{exp_id:0{width}d}"


def fmt_exp(exp_id: int | None) -> str:
    """`exp 007` (ids above 999 simply get more digits)."""
    return "—" if exp_id is None else f"exp {exp_code(exp_id)}"


def fmt_num(x: float | None) -> str:
    """A score or margin with 6 significant digits."""
    return "—" if x is None else f"{x:.6g}"


def fmt_delta(x: float | None) -> str:
    """A signed delta with 6 significant digits."""
    return "—" if x is None else f"{x:+.6g}"


def clean(text: str | None, limit: int = HYPOTHESIS_CHARS) -> str:
    """One markdown-neutral line of at most `limit` characters (plus escapes).

    Control characters, tabs and newlines become spaces, runs of whitespace collapse, the text
    is cut at `limit` with an ellipsis, then `\\`, `|`, backticks and a `<` that could open an
    HTML tag or comment are escaped and a
    leading `#`, `>`, `-`, `+`, `*`, `=`, `~` or `_` is escaped.
    """
    one = " ".join(_CONTROL.sub(" ", text or "").split())
    if len(one) > limit:
        one = one[: max(0, limit - 1)].rstrip() + "…"
    one = _TAG.sub(r"\\<", one.translate(_ESCAPES))
    if one.startswith(_LEADING) or re.match(r"\d+[.)]", one):
        one = "\\" + one
    return one


def score_label(search: Search) -> str:
    """The metric's short name, e.g. `train_s`."""
    return clean(search.config.score_field, 40) or "score"


def row_line(t: Trial, search: Search, *, hyp_chars: int = HYPOTHESIS_CHARS, note: bool = True) -> str:
    """One trial as a list item plus an optional indented note line."""
    parts = [clean(t.specialist, 40), t.status.value]
    if t.score is not None:
        parts.append(f"{score_label(search)}={fmt_num(t.score)}")
    if t.delta is not None:
        margin = f" (margin {fmt_num(t.margin)})" if t.margin is not None else ""
        parts.append(f"Δ={fmt_delta(t.delta)}{margin}")
    if t.parent_exp is not None:
        parts.append(f"parent {exp_code(t.parent_exp)}")
    line = f"- {fmt_exp(t.exp_id)} [{', '.join(parts)}] {clean(t.hypothesis, hyp_chars)}".rstrip()
    text = clean(t.note_line, NOTE_CHARS) if note else ""
    return f"{line}\n  └ {text}" if text else line


def table_row(cells: list[str]) -> str:
    """A markdown table row; cells must already be `clean`."""
    return "| " + " | ".join(c or "—" for c in cells) + " |"


class Section:
    """A titled block of whole rows within a character budget.

    Rows are added whole or not at all; a final `… N more not shown` line counts the rows
    that did not fit plus those never fetched (`unseen`).
    """

    _MORE = 48  # room kept for the "… N more not shown" line

    def __init__(self, title: str, budget: int, *, head: list[str] | None = None) -> None:
        self.table = bool(head)  # a table needs a blank line before the 'more' line
        self.lines = [title, *(head or [])]
        self.budget = budget
        self.used = sum(len(x) + 1 for x in self.lines)
        self.hidden = 0

    def add(self, row: str) -> bool:
        """Append `row` if it fits (leaving room for the 'more' line); else count it hidden."""
        if self.hidden or self.used + len(row) + 1 + self._MORE > self.budget:
            self.hidden += 1
            return False
        self.lines.append(row)
        self.used += len(row) + 1
        return True

    def fill(self, rows: list[str]) -> Section:
        for row in rows:
            self.add(row)
        return self

    def text(self, unseen: int = 0, what: str = "more not shown") -> str:
        """The section, ending with the count of rows left out, if any."""
        more = self.hidden + max(0, unseen)
        tail = [("\n" if self.table else "") + f"… {more} {what}"] if more else []
        return "\n".join(self.lines + tail)


@dataclass
class Block:
    """A section's content before layout: whole rows, and how many were never fetched.

    `chain=True` (an ancestry) keeps the first row and as many of the last rows as fit,
    eliding the middle; otherwise rows are kept from the top.
    """

    title: str
    rows: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    unseen: int = 0
    what: str = "more not shown"
    empty: str = ""
    chain: bool = False

    def full(self) -> str:
        """The block with every fetched row."""
        if not self.rows:
            return "\n".join([self.title, self.empty] if self.empty else [self.title])
        if self.chain:
            return "\n".join([self.title, *self.rows])
        return Section(self.title, 10**12, head=self.head).fill(self.rows).text(self.unseen, self.what)

    def natural(self) -> int:
        """Characters needed to show every fetched row."""
        return len(self.full())

    def render(self, budget: int) -> str:
        """The block within `budget` characters (rows whole, the rest counted)."""
        full = self.full()
        if len(full) <= budget or not self.rows:
            return full
        if self.chain:
            return self._chain(budget)
        sec = Section(self.title, budget, head=self.head)
        for row in self.rows:
            sec.add(row)
        return sec.text(unseen=self.unseen, what=self.what)

    def _chain(self, budget: int) -> str:
        room = budget - len(self.title) - 1
        if sum(len(x) + 1 for x in self.rows) <= room:
            return "\n".join([self.title, *self.rows])
        room -= 50  # the elision line
        first = self.rows[:1] if len(self.rows[0]) + 1 <= room else []
        used, tail = sum(len(x) + 1 for x in first), []
        for row in reversed(self.rows[1:]):
            if used + len(row) + 1 > room:
                break
            tail.insert(0, row)
            used += len(row) + 1
        hidden = len(self.rows) - len(first) - len(tail)
        return "\n".join([self.title, *first, f"… {hidden} intermediate rows not shown", *tail])


def layout(blocks: list[Block], shares: list[float], total: int, sep: str = "\n\n") -> str:
    """Render `blocks` within `total` characters, deterministically.

    Water-filling: a block that needs less than its share gets what it needs, and what it
    leaves is shared among the others in proportion to their shares.
    """
    room = max(0, total - len(sep) * max(0, len(blocks) - 1))
    need = [b.natural() for b in blocks]
    budget = [0] * len(blocks)
    active = set(range(len(blocks)))
    while active:
        weight = sum(shares[i] for i in active) or 1.0
        fair = {i: int(room * shares[i] / weight) for i in active}
        done = {i for i in active if need[i] <= fair[i]}
        if not done:
            for i in active:
                budget[i] = fair[i]
            break
        for i in done:
            budget[i] = need[i]
            room -= need[i]
        active -= done
    return sep.join(b.render(budget[i]) for i, b in enumerate(blocks))
