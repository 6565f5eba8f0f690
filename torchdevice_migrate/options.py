"""What a run is asked to do, and the error a file that cannot be handled raises.

Kept apart from ``transform.py`` so that deciding a file needs no rules (the pre-filter of
``trigger.py``) never imports LibCST: a run over files that use no CUDA API, ``--version`` and
``--help`` stay fast (issue 12).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence, Set, Type

if TYPE_CHECKING:  # pragma: no cover
    from .project_index import ProjectIndex
    from .rules import Rule

DEFAULT_SHIM_MODULE = "runtime_shim"
#: The port targets (``targets.py`` says what each means); here so that reading the configuration
#: needs no LibCST. tests/test_speed_invariants.py holds them equal to ``targets.TARGETS``.
TARGETS = ("shim", "torch")
DEFAULT_TARGET = "shim"


class SourceError(Exception):
    """The source cannot be decoded, parsed or faithfully round-tripped."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


@dataclass
class Options:
    shim_module: str = DEFAULT_SHIM_MODULE
    select: Optional[Set[str]] = None
    ignore: Set[str] = field(default_factory=set)
    #: The rule classes to run, in order; None: all of them (``rules.ALL_RULES``).
    rules: Optional[Sequence[Type[Rule]]] = None
    #: ``"shim"`` (portable through the runtime shim) or ``"torch"`` (torch's own API only); see
    #: ``targets.py`` (its ``DEFAULT_TARGET``).
    target: str = DEFAULT_TARGET
    #: Facts about the whole project (``project_index.py``); None: the file is judged on its own.
    project: Optional[ProjectIndex] = None
    #: The layout post-pass (``layout.py``): a changed line longer than ``line_length`` (and than the
    #: line it replaces) is wrapped as black/ruff would, and an added ``import runtime_shim`` goes to its
    #: isort place. Off in the API (the tests and goldens show the rules' own output); the CLI turns
    #: it on with the project's line length (``config.project_style``: ruff's or black's, else 88).
    layout: bool = False
    line_length: int = 88
    #: Slicing (``slicing.py``): in a file of at least this many bytes, the bodies of functions nothing
    #: can touch are set aside before LibCST parses it, and put back after. None: parse every file
    #: whole (the reference the tests compare with); 0: slice every file that has such a body.
    slice_min_bytes: Optional[int] = 4096
