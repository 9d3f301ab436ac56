"""Failure summaries: one short line a specialist can act on.

`summarize(output, rc)` finds the last error line of a phase's output (a traceback's final
exception line, else the last line that looks like an error: `...Error`, `Killed`, CUDA
errors, out-of-memory) and the deepest stack frame inside the recipe tree, and renders e.g.
``ZeroDivisionError: division by zero (at recipe.py:12 in train)``, bounded to `MAX_CHARS`.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass

MAX_CHARS = 300

_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<fn>\S+)')
_EXC_LINE = re.compile(r"^(?P<name>[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Failure))(: .*)?$")
_RANK = re.compile(r"^\[[\w:.-]*\]: ?")
_ERRORISH = re.compile(
    r"(Error|Exception|Traceback|Killed|killed|CUDA error|out of memory|OOM|"
    r"Fatal Python error|Segmentation fault|FAILED|failed|Aborted|core dumped)"
)


@dataclass(frozen=True)
class _Block:
    exc: str
    frames: list[tuple[str, int, str]]


def _tracebacks(lines: list[str]) -> list[_Block]:
    """Every `Traceback (most recent call last):` block with its frames and final line."""
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        if "Traceback (most recent call last):" not in lines[i]:
            i += 1
            continue
        frames: list[tuple[str, int, str]] = []
        i += 1
        while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
            m = _FRAME.match(lines[i])
            if m:
                frames.append((m["path"], int(m["line"]), m["fn"]))
            i += 1
        exc = lines[i].strip() if i < len(lines) else ""
        blocks.append(_Block(exc=_strip_prefix(exc), frames=frames))
    return blocks


def _strip_prefix(line: str) -> str:
    """Drop torchrun's `[rank0]: ` style prefix."""
    return _RANK.sub("", line)


def _recipe_frame(frames: list[tuple[str, int, str]], roots: tuple[str, ...]) -> str:
    for path, line, fn in reversed(frames):
        for root in roots:
            if path.startswith(root.rstrip("/") + "/"):
                return f"{path[len(root.rstrip('/')) + 1:]}:{line} in {fn}"
        if not path.startswith(("/", "<")):
            return f"{path}:{line} in {fn}"
    return ""


def _last_error_line(lines: list[str]) -> str:
    for line in reversed(lines):
        s = _strip_prefix(line.strip())
        if s and (_EXC_LINE.match(s) or _ERRORISH.search(s)) and not _FRAME.match(line):
            return s
    return ""


def _signal_text(rc: int | None) -> str:
    if rc is None:
        return ""
    signo = -rc if rc < 0 else rc - 128 if rc > 128 else 0
    if signo <= 0:
        return f"exit code {rc}"
    try:
        name = signal.Signals(signo).name
    except ValueError:
        name = f"signal {signo}"
    hint = {"SIGKILL": " (out of memory or killed)", "SIGXFSZ": " (file size limit exceeded)",
            "SIGSEGV": " (segmentation fault)", "SIGABRT": " (aborted)"}.get(name, "")
    return f"killed by {name}{hint}"


def summarize(output: str, rc: int | None = None, roots: tuple[str, ...] = ("/trial",)) -> str:
    """Return the failure summary of a phase's captured output (bounded to `MAX_CHARS`).

    `roots` are the directories that hold the recipe (inside the sandbox: `/trial`); the
    deepest frame under one of them is named. `rc` is used when no error line is found.
    """
    lines = [_strip_prefix(line) for line in output.splitlines()]
    blocks = _tracebacks(lines)
    chosen = next((b for b in reversed(blocks) if _recipe_frame(b.frames, roots)), None)
    if chosen is None and blocks:
        chosen = blocks[-1]
    if chosen is not None and chosen.exc:
        text = chosen.exc
        where = _recipe_frame(chosen.frames, roots)
        if where:
            text = f"{text} (at {where})"
    else:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        sig = _signal_text(rc) if rc else ""
        text = _last_error_line(lines) or (f"{last} ({sig})" if last and sig else last or sig)
    if len(text) > MAX_CHARS:
        text = text[: MAX_CHARS - 3] + "..."
    return text


class Redactor:
    """Rewrites host paths in texts that leave the evaluator into the paths a sandbox shows.

    Failure lines and log tails go back to specialists, who must not learn the host layout
    (where the state dir and the data live). `paths` maps a host path to its sandbox name;
    `families` maps a host dir whose every child stands for one sandbox path (the scratch dirs
    of the phases are all `/trial` inside). Symlinked spellings are rewritten too.
    """

    def __init__(self, paths: dict[str, str], families: dict[str, str] | None = None) -> None:
        import os

        rules: list[tuple[float, str, str]] = []  # (precedence, pattern, replacement)
        for table, child, bonus in ((paths, "", 0.5), (families or {}, r"/[^/\s'\"]+", 0.0)):
            for host, inside in table.items():
                for spelling in {str(host).rstrip("/"), os.path.realpath(host).rstrip("/")}:
                    if spelling:
                        rules.append((len(spelling) + bonus, re.escape(spelling) + child, inside))
        rules.sort(key=lambda r: r[0], reverse=True)  # longest host path first
        self._inside = [inside for _, _, inside in rules]
        alternatives = (f"(?P<r{i}>{rx})(?![\\w.-])" for i, (_, rx, _) in enumerate(rules))
        self._re = re.compile("|".join(alternatives)) if rules else None

    def __call__(self, text: str) -> str:
        """`text` with every known host path replaced by its sandbox path."""
        if not text or self._re is None:
            return text
        return self._re.sub(lambda m: self._inside[int(m.lastgroup[1:])], text)
