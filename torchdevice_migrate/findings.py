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

    @property
    def changed(self) -> bool:
        return self.state is FileState.CHANGED
