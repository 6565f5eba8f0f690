"""Typed per-site and per-file results shared by rewrite mode, ``--diff``, ``--check`` and ``--report``."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import List, Optional, Tuple


class FindingStatus(str, enum.Enum):
    REWRITTEN = "rewritten"
    REVIEW = "review"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class Finding:
    """One call site: what the tool did there (or why it did not)."""

    path: str
    line: int
    column: int  # 1-based
    api: str  # qualified name from the registry
    status: FindingStatus
    code: str  # TDMnnn
    message: str
    original: str
    replacement: str = ""  # for REWRITTEN
    hint: str = ""  # for REVIEW / UNSUPPORTED
    cell: Optional[int] = None  # notebook cell number (1-based), when the file is a notebook
    end_line: int = 0
    end_column: int = 0

    def location(self) -> str:
        cell = f"[cell {self.cell}]" if self.cell is not None else ""
        return f"{self.path}{cell}:{self.line}:{self.column}"


class FileState(str, enum.Enum):
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    ERROR = "error"


@dataclass(frozen=True)
class FileError:
    """Why a file was left untouched: where (``line`` 0: the file as a whole) and the reason."""

    path: str
    line: int
    reason: str
    cell: Optional[int] = None  # notebook cell number (1-based), when the error is in one cell

    def render(self) -> str:
        """``path[cell N]:line: reason``, the form printed on standard error."""
        cell = f"[cell {self.cell}]" if self.cell is not None else ""
        return f"{self.path}{cell}:{self.line}: {self.reason}"


@dataclass
class FileResult:
    path: str
    state: FileState
    original: bytes = b""
    new: Optional[bytes] = None
    findings: List[Finding] = field(default_factory=list)
    error: Optional[str] = None  # "path:line: reason" for ERROR
    written: bool = False
    read_stat: Optional[Tuple[int, int]] = None  # (size, mtime_ns) when read: a write checks it still holds
    failure: Optional[FileError] = None  # the typed error; ``error`` is its rendering

    def __post_init__(self) -> None:
        if self.failure is not None and self.error is None:
            self.error = self.failure.render()

    @classmethod
    def failed(cls, path: str, line: int, reason: str, original: bytes = b"", cell: Optional[int] = None) -> FileResult:
        """An ERROR result for ``path``: left untouched, reported as ``path:line: reason``."""
        return cls(path, FileState.ERROR, original=original, failure=FileError(path, line, reason, cell))

    def fail(self, line: int, reason: str) -> None:
        """Turn this result into an error (e.g. the port could not be written)."""
        self.state, self.failure = FileState.ERROR, FileError(self.path, line, reason)
        self.error = self.failure.render()

    @property
    def changed(self) -> bool:
        return self.state is FileState.CHANGED
