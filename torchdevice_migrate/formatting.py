"""``--reformat``: the project's own formatter on the statements the port changed, nothing else.

The formatter is the one the project already uses (``config.project_style``: ruff when it configures
ruff, else black when it configures black). Each run formats the port's bytes on standard input, named
as the file (``--stdin-filename``, so the formatter reads the project's own configuration: its line
length, quote style, exclusions):

* ruff: ``ruff format --range START-END`` once per block of changed lines (ruff takes one range a
  call), from the last block to the first so that a block's line numbers still hold when it is formatted;
* black: ``black --line-ranges START-END`` (repeatable, one call).

A range is a block of lines of the port that are not lines of the original (changed or inserted);
both formatters widen it to the whole statements it touches and leave every other line as it is.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

FORMATTERS = ("ruff", "black")


class FormatterError(Exception):
    """The formatter cannot be found or failed; the message says which and why."""


def changed_ranges(original: str, new: str) -> List[Tuple[int, int]]:
    """1-based inclusive line ranges of ``new`` that are changed or inserted relative to ``original``."""
    a, b = original.splitlines(), new.splitlines()
    out: List[Tuple[int, int]] = []
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "insert") and j2 > j1:
            if out and out[-1][1] >= j1:  # adjacent blocks: one range
                out[-1] = (out[-1][0], j2)
            else:
                out.append((j1 + 1, j2))
    return out


def executable(formatter: str) -> Optional[List[str]]:
    """The command that runs ``formatter``: on PATH, else next to this Python (its virtual environment)."""
    found = shutil.which(formatter)
    if found is None:
        beside = Path(sys.executable).parent / formatter
        found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None
    return [found] if found else None


def _run(command: Sequence[str], source: bytes, cwd: Optional[Path]) -> bytes:
    try:
        done = subprocess.run(list(command), input=source, capture_output=True, cwd=cwd, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FormatterError(f"{command[0]}: {e}") from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise FormatterError(f"{Path(command[0]).name} failed: {why[-1] if why else done.returncode}")
    return done.stdout


def reformat(original: bytes, new: bytes, path: str, formatter: str, encoding: str = "utf-8") -> bytes:
    """``new`` (the port of ``original``, file ``path``) with its changed statements formatted by ``formatter``."""
    if formatter not in FORMATTERS:
        raise FormatterError(f"unknown formatter {formatter!r} (choose one of {', '.join(FORMATTERS)})")
    command = executable(formatter)
    if command is None:
        raise FormatterError(f"{formatter} is not installed (the project formats with {formatter}: "
                             f"pip install {formatter}, or run without --reformat)")
    try:
        ranges = changed_ranges(original.decode(encoding), new.decode(encoding))
    except (UnicodeDecodeError, LookupError):
        return new
    if not ranges:
        return new
    folder = Path(path).parent if Path(path).parent.is_dir() else None
    if formatter == "ruff":
        for start, end in reversed(ranges):
            new = _run([*command, "format", "--quiet", f"--range={start}-{end + 1}", "--stdin-filename", path, "-"],
                       new, folder)
        return new
    line_ranges = [f"--line-ranges={start}-{end}" for start, end in ranges]
    return _run([*command, "--quiet", *line_ranges, "--stdin-filename", path, "-"], new, folder)
