"""A bounded unified diff as highlighted HTML: Pygments colours the code, the page marks lines.

`SnapshotStore.diff` bounds the diff (lines and bytes); this module splits it into files and
hunks (counting each hunk's lines, so a removed line that starts with `--` is not taken for a
file header), highlights each hunk's code with the lexer its file name selects, and returns
escaped HTML: every character of the diff goes through Pygments' tokens and `html.escape`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape

from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.token import STANDARD_TYPES, Token
from pygments.util import ClassNotFound

_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_KINDS = {" ": "ctx", "+": "add", "-": "del"}


@dataclass
class FileDiff:
    path: str
    header: list[str] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (kind, text): hunk, ctx, add, del, note


def parse(text: str) -> tuple[list[FileDiff], list[str]]:
    """Files of a unified diff, and the lines outside any file (summaries, the truncation note)."""
    files: list[FileDiff] = []
    notes: list[str] = []
    lines = text.splitlines()
    i, old_left, new_left = 0, 0, 0
    while i < len(lines):
        line = lines[i]
        if old_left > 0 or new_left > 0:
            kind = _KINDS.get(line[:1], "note")
            old_left -= kind in ("ctx", "del")
            new_left -= kind in ("ctx", "add")
            files[-1].lines.append((kind, line[1:] if kind != "note" else line))
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            files.append(FileDiff(_path(line[4:], lines[i + 1][4:]), [line, lines[i + 1]]))
            i += 1
        elif (m := _HUNK.match(line)) and files:
            old_left, new_left = int(m[1] or 1), int(m[2] or 1)
            files[-1].lines.append(("hunk", line))
        elif line.startswith("\\") and files:
            files[-1].lines.append(("note", line))
        else:
            notes.append(line)
        i += 1
    return files, notes


def _path(old: str, new: str) -> str:
    name = new if new != "/dev/null" else old
    return name[2:] if name[:2] in ("a/", "b/") else name


def _lexer(path: str) -> Lexer:
    try:
        return get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return TextLexer(stripnl=False, ensurenl=False)


def _highlight(code: list[str], lexer: Lexer) -> list[str]:
    """Each line of `code` as HTML spans (token classes of Pygments' HtmlFormatter)."""
    out, current = [], []
    for ttype, value in lexer.get_tokens("\n".join(code)):
        css = _css(ttype)
        for k, part in enumerate(value.split("\n")):
            if k:
                out.append("".join(current))
                current = []
            if part:
                current.append(f'<span class="{css}">{escape(part)}</span>' if css else escape(part))
    out.append("".join(current))
    return (out + [""] * len(code))[: len(code)]


def _css(ttype: object) -> str:
    while ttype is not Token and ttype not in STANDARD_TYPES:
        ttype = ttype.parent  # type: ignore[attr-defined]
    return STANDARD_TYPES.get(ttype, "")  # type: ignore[arg-type]


def to_html(text: str) -> str:
    """The diff as `<div class="diff">` blocks, one per file (escaped; see the module docstring)."""
    files, notes = parse(text)
    parts = []
    for f in files:
        code_rows = [t for k, t in f.lines if k in ("ctx", "add", "del")]
        lit = iter(_highlight(code_rows, _lexer(f.path)))
        rows = []
        for kind, t in f.lines:
            body = next(lit) if kind in ("ctx", "add", "del") else escape(t)
            mark = {"add": "+", "del": "-", "ctx": " "}.get(kind, "")
            rows.append(f'<tr class="{kind}"><td class="mark">{mark}</td><td class="code">{body}</td></tr>')
        parts.append(f'<div class="diff"><div class="file">{escape(f.path)}</div>'
                     f'<table class="hl">{"".join(rows)}</table></div>')
    if notes:
        parts.append('<ul class="diff-notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes if n.strip()) + "</ul>")
    return "".join(parts)
