"""The byte pre-filter: which files can possibly use a CUDA API. Built from the registry; no LibCST.

A file that this trigger does not match is left byte-identical without being parsed (issue 12):
none of the rules could change it or report anything in it. The trigger is derived from the
registry (``registry.py``), entry by entry, by the kind of the entry:

* a qualified name in a CUDA namespace (``torch.cuda.Event``, ``torch.backends.cudnn.benchmark``):
  the namespace's own word (``cuda``, ``cudnn``), which any reference must spell, whatever the
  aliases (``import torch as th; th.cuda.Event``, ``from torch.cuda import Event as E``);
* a method or attribute of a class (``torch.Tensor.is_cuda``, ``torch.cuda.Stream.cuda_stream``),
  which the rules match by attribute name on any object: that attribute name;
* any other qualified name (``torch.amp.GradScaler``, ``torch.utils.cpp_extension.load``): its
  most distinctive component (the longest after ``torch``). Every component of a qualified name
  is spelled somewhere in a file that the rules resolve it in (an import or the attribute chain).
  Entries in ``NEEDS_CUDA_EVIDENCE`` are rewritten only next to a CUDA device string or in a file
  that has other CUDA rewrites, so the file already matches for that reason;
* ``literal:'cuda'``: the word ``cuda``; ``literal:'*.cu'``: a string ending in ``.cu``/``.cuh``;
* ``env:X``: the word ``X``;
* ``module:X``: an *import* of ``X`` (``import X``, ``import a, X.y``, ``from X(.y) import``, and
  ``from parent import X`` for dotted entries), never the bare substring: ``flash_attn`` must not
  match ``is_flash_attn_2_available``.

Words are whole identifiers: ``cuda`` matches ``torch.cuda``, ``.cuda(``, ``'cuda:0'`` and
``f'cuda:{i}'`` but not ``cuda_rng_state`` or ``is_cuda_available``.

One shape is not a registry name: an int or a rank variable used as a device
(``x.to(0)``, ``x.to(local_rank)``, ``torch.ones(2, device=gpu)``, rules/device_strings.py).
``tests/test_trigger.py`` synthesises a use of every registry entry and checks the trigger
matches it, and that the reference path (no pre-filter) finds nothing in what it does not match.
"""

from __future__ import annotations

import contextlib
import gc
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from .registry import API, CUDA_MODULE_PREFIXES, Api

#: Registry names that the rules rewrite only where the file shows CUDA use by another entry
#: (a ``'cuda'`` device argument, other CUDA rewrites): they need no trigger word of their own.
#: (``Api.evidence`` in the registry: ``torch.device('cuda...')``, ``torch.load`` in files with other
#: CUDA rewrites, ``torch.autocast('cuda')``).
NEEDS_CUDA_EVIDENCE = frozenset(a.name for a in API.values() if a.evidence)

#: Of those, the names that the rules rewrite in any file of a project that uses CUDA somewhere
#: (``project_index.py``): in such a run they match on their own word (``load``).
PROJECT_EVIDENCE = frozenset(a.name for a in API.values() if a.evidence == "project")

#: Names whose tail says they hold a device index (``RANK_NAME_RE`` of rules/device_strings.py).
RANK_WORDS = ("gpu", "gpu_id", "gpu_idx", "local_rank", "rank", "device_id", "device_idx", "dev_id", "cuda_id")


def word(name: str) -> str:
    """``name`` as a whole identifier (not part of a longer one). The literal comes first, then
    the boundary checks, so that ``re`` scans for the literal at C speed."""
    return rf"{re.escape(name)}(?<![\w]{re.escape(name)})(?![\w])"


_SEP = r"(?:[ \t]|\\\r?\n)"  # a space, a tab or a backslash continuation


def _dotted(module: str) -> str:
    return r"[ \t]*\.[ \t]*".join(re.escape(p) for p in module.split("."))


def _import_of(modules: Sequence[str]) -> List[str]:
    """Patterns for the import statements that bring in one of ``modules`` (or a submodule of one)."""
    names = "|".join(_dotted(m) for m in sorted(modules, key=lambda m: (-len(m), m)))
    alias = rf"[\w.]+(?:{_SEP}+as{_SEP}+\w+)?"
    out = [
        # import X / import a, X.y / import a as b, X
        rf"import(?<![\w.]import){_SEP}+(?:{alias}{_SEP}*,{_SEP}*)*(?:{names})(?![\w])",
        # from X import ... / from X.y import ...
        rf"from(?<![\w.]from){_SEP}+(?:{names})(?![\w])",
    ]
    for module in modules:
        parent, _, last = module.rpartition(".")
        if parent:  # from numba import cuda / from numba import (jit, cuda as nc)
            out.append(rf"from(?<![\w.]from){_SEP}+{_dotted(parent)}{_SEP}+import\s*\(?(?:[\w\s,\\()]|#[^\n]*)*?{word(last)}")
    return out


def _is_class(component: str) -> bool:
    return component[:1].isupper()


def patterns_for(api: Api) -> List[str]:
    """The patterns that any use of ``api`` the rules act on must match (see the module docstring)."""
    name = api.name
    if name.startswith("module:"):
        return _import_of([name[len("module:"):]])
    if name.startswith("env:"):
        return [word(name[len("env:"):])]
    if name.startswith("literal:"):
        value = name[len("literal:"):].strip("'\"")
        if value.startswith("*."):  # a file suffix: the end of a string literal
            return [re.escape(value[1:]) + r"h?['\"]" if value == "*.cu" else re.escape(value[1:]) + r"['\"]"]
        return [word(value)]
    parts = name.split(".")
    if len(parts) > 2 and any(_is_class(p) for p in parts[1:-1]):
        # An attribute of a class (torch.Tensor.is_cuda): matched by attribute name on any object.
        return [word(parts[-1])]
    for prefix in CUDA_MODULE_PREFIXES:
        if name == prefix or name.startswith(prefix + "."):
            return [word(prefix.rpartition(".")[2])]
    if name in NEEDS_CUDA_EVIDENCE:
        return []
    rest = parts[1:] if parts[0] == "torch" and len(parts) > 1 else parts
    return [word(max(rest, key=len))]


# x.to(0), x.to(local_rank), torch.ones(2, device=0), device=self.gpu_id (rules/device_strings.py).
_INDEX = r"\s*(?:\d|[\w.]*(?i:" + "|".join(re.escape(w) for w in RANK_WORDS) + r")(?![\w]))"
DEVICE_INDEX = [r"\.\s*to\s*\(" + _INDEX, r"device(?<![\w]device)\s*=" + _INDEX]

_WORD = re.compile(r"(?P<name>\w+)\(\?<!\[\\w\](?P=name)\)\(\?!\[\\w\]\)")


class Trigger:
    """Several regexes, each starting with a literal (``re`` finds those fast, an alternation of
    many literals it does not): ``search`` answers whether any of them matches, like one regex."""

    def __init__(self, alternatives: Iterable[str]) -> None:
        alternatives = set(alternatives)
        words = sorted(m.group("name") for m in map(_WORD.fullmatch, alternatives) if m)
        groups: dict = {}
        for w in words:  # words that share their first three letters share one scan
            groups.setdefault(w[:3], []).append(w[3:])
        patterns = []
        for head, tails in sorted(groups.items()):
            tails = sorted(tails, key=lambda t: (-len(t), t))
            body = "|".join(re.escape(t) for t in tails)
            patterns.append(rf"{re.escape(head)}(?<![\w]{re.escape(head)})(?:{body})(?![\w])")
        patterns += sorted((p for p in alternatives if not _WORD.fullmatch(p)), key=lambda p: (-len(p), p))
        self.patterns = [re.compile(p.encode("ascii")) for p in patterns]
        #: The same as one regex (slower to run), for display and for tests.
        self.pattern = b"|".join(p.pattern for p in self.patterns)

    def search(self, source: bytes):
        for pattern in self.patterns:
            match = pattern.search(source)
            if match is not None:
                return match
        return None

    def finditer(self, source: bytes) -> Iterator[re.Match]:
        """Every match, pattern by pattern."""
        for pattern in self.patterns:
            yield from pattern.finditer(source)


def build(entries: Iterable[Api]) -> Trigger:
    entries = list(entries)
    modules = [api.name[len("module:"):] for api in entries if api.name.startswith("module:")]
    alternatives = {p for api in entries if not api.name.startswith("module:") for p in patterns_for(api)}
    alternatives.update(_import_of(modules) if modules else ())
    alternatives.update(DEVICE_INDEX)
    return Trigger(alternatives)


TRIGGER = build(API.values())


def _project_patterns(name: str) -> List[str]:
    """What a call the rules resolve to ``name`` (``torch.load``) must spell: the last component called
    (``torch.load(f)``, ``th.load (f)``, ``from torch import load; load(f)``; whitespace, line
    continuations and comments may sit before the parenthesis) or imported under another name
    (``from torch import load as L``)."""
    last = name.rpartition(".")[2]
    return [word(last) + r"(?:\s|\\|#[^\n]*\n)*\(", word(last) + r"(?:\s|\\)+as(?![\w])"]


#: What the source of a string ``is_cuda_device_string`` accepts must spell: a quote followed by ``cuda``,
#: a literal whose whole text is ``c``/``cu``/``cud`` (the first part of ``'cu' 'da'``), or, after a
#: quote and the start of ``cuda``, an escape that can spell a letter (``'\x63uda'``, ``'c\165da'``,
#: ``'\u0063uda'``, ``'\N{...}'``) or a line continuation inside the literal. A file without any has
#: nothing to list (``"\n".join`` is no reason to visit every node) (``rules/review.py``); ``slicing.py``
#: keeps every function whose text has one, and the project index walks every statement that has one.
MAY_HOLD_DEVICE_STRING = re.compile(r"""['"](?:cuda|(?:c|cu|cud)['"]|(?:c|cu|cud|cuda)?\\(?:[xuUN0-7]|\r?\n))""")

_IDENTIFIER = rb"[\w\x80-\xff]+"  # a name, non-ASCII letters included (UTF-8 bytes)
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") | frozenset(range(0x80, 0x100))


class ProjectTrigger(Trigger):
    """``PROJECT_EVIDENCE`` calls (``torch.load`` -> ``load(``), counting only those that can be one:
    a call of the bare name (``from torch import load``), or of an attribute of the name's module as
    imported (``torch.load``, ``th.load`` after ``import torch as th``), or of something that is not
    a plain name (``(torch).load``). ``json.load(f)``, ``torchaudio.load(p)``, ``torch.export.load(p)``
    are not: the rules resolve a call through the file's imports only, so none of them is
    ``torch.load``. Every import alias in the file counts, wherever it is (a function's own
    ``import torch as t`` too)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(p for name in names for p in _project_patterns(name))
        parents = {name.rpartition(".")[0] for name in names}
        #: the receivers spelled as such (``torch``), and the regex of the imports that name others
        self._spelled = {p.rpartition(".")[2].encode() for p in parents}
        self._aliases = re.compile(rb"(?<![\w.])(?:" + b"|".join(re.escape(p.encode()) for p in sorted(parents))
                                   + rb")(?:\s|\\)+as(?:\s|\\)+(" + _IDENTIFIER + rb")")

    def search(self, source: bytes):
        return next(self.finditer(source), None)

    def finditer(self, source: bytes) -> Iterator[re.Match]:
        aliases: Optional[Set[bytes]] = None
        for match in super().finditer(source):
            receiver = _receiver(source, match.start())
            if receiver is None or receiver == b"" or receiver in self._spelled:
                yield match
                continue
            if aliases is None:
                aliases = {m.group(1) for m in self._aliases.finditer(source)}
            if receiver in aliases:
                yield match


def _receiver(source: bytes, pos: int) -> Optional[bytes]:
    """What the name at ``pos`` is an attribute of: ``b""`` when it is no attribute (no ``.``
    before it), the word before the dot, or None when that is not a plain name (``)``, ``]``, a
    line break)."""
    i = _skip_back(source, pos)
    if i == 0 or source[i - 1] != ord("."):
        return b""
    i = _skip_back(source, i - 1)
    j = i
    while j > 0 and source[j - 1] in _WORD_BYTES:
        j -= 1
    return source[j:i] if j < i else None


def _skip_back(source: bytes, i: int) -> int:
    """``i`` moved back over spaces, tabs and backslash line continuations."""
    while True:
        if i > 0 and source[i - 1] in b" \t":
            i -= 1
        elif source.endswith(b"\\\n", 0, i):
            i -= 2
        elif source.endswith(b"\\\r\n", 0, i):
            i -= 3
        else:
            return i


#: In a project that uses CUDA: a call of a ``PROJECT_EVIDENCE`` name (``torch.load`` -> ``load(``)...
PROJECT_TRIGGER = ProjectTrigger(sorted(PROJECT_EVIDENCE))
#: ... in a file that imports the name's top-level module (``import torch``, ``import torch.nn as nn``,
#: ``import os, torch``, ``from torch import load``): the only ways the rules resolve a name to it.
PROJECT_IMPORTS = re.compile("|".join(_import_of(sorted({n.split(".")[0] for n in PROJECT_EVIDENCE}))).encode("ascii"))


def is_candidate(source: bytes, project=None, refine: bool = True) -> bool:
    """True if ``source`` may use a CUDA API (the rules must see it); False: leave it as it is.

    ``project``: the run's ``ProjectIndex`` (or None), whose ``uses_cuda`` turns on ``PROJECT_TRIGGER``.
    ``refine``: a file the regexes match only in comments and docstrings is no candidate either
    (``in_code``); False: the regexes alone (what the parallel runner's parent uses to dispatch)."""
    triggers = [TRIGGER]
    if project is not None and PROJECT_TRIGGER.search(source) is not None \
            and PROJECT_IMPORTS.search(source) is not None and bool(project.uses_cuda):
        triggers.append(PROJECT_TRIGGER)
    if not any(t.search(source) is not None for t in triggers):
        return False
    return not refine or in_code(source, triggers)


def in_code(source: bytes, triggers: Sequence[Trigger] = (TRIGGER,)) -> bool:
    """Whether some match of ``triggers`` lies outside comments and docstrings.

    The rules never act on a comment (``# move it to cuda``) or a docstring (``Runs on cuda.``), and
    in real code most files that mention CUDA words at all mention them only there. The standard
    library's parser (C, a few ms a file) gives the exact extent of every string literal; a match
    inside a docstring, or after a ``#`` that is not inside a string, is not code. Anything this
    cannot decide exactly (no parse, a non-UTF-8 file, odd line endings) counts as code: the rules
    then see the file, as without this step."""
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        return True
    tree = parse_tree(source)
    if tree is None:
        return True
    if text.startswith("\ufeff") or "\r" in text or "\f" in text or "\x00" in text:
        return True  # offsets and lines as ast counts them; keep the exact cases only
    is_code = code_positions(source, tree, line_starts(source))
    for trigger in triggers:
        for match in trigger.finditer(source):
            if is_code(match.start()):
                return True
    return False


_LAST_POSITIONS: list = []  # [(source, tree, is_code)]: the pre-filter's and the slicing's, for one file


def code_positions(source: bytes, tree, starts: List[int]) -> Callable[[int], bool]:
    """For a source ``in_code`` can decide (UTF-8, ``\n`` line ends only, parsed as ``tree``; ``starts``
    its ``line_starts``): whether the byte at an offset is code, that is neither in a docstring of
    more than one word nor after a ``#`` outside any string literal on its line. The last two are
    kept (the comment/docstring check and the slicing of one candidate ask about the same file)."""
    for cached, cached_tree, made in _LAST_POSITIONS:
        if cached_tree is tree and (cached is source or cached == source):
            return made
    made = _code_positions(source, tree, starts)
    _LAST_POSITIONS.append((source, tree, made))
    del _LAST_POSITIONS[:-2]
    return made


def _code_positions(source: bytes, tree, starts: List[int]) -> Callable[[int], bool]:
    import ast
    import bisect

    def offset(lineno: Optional[int], col: Optional[int]) -> int:
        return starts[(lineno or 1) - 1] + (col or 0)  # both are set on every parsed node

    docstrings = []
    for node in _definitions(tree):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            d = body[0].value
            if not any(c.isspace() for c in str(d.value)):
                continue  # a one-word docstring ('cuda'): treated as code, as the review rule sees it
            docstrings.append((offset(d.lineno, d.col_offset), offset(d.end_lineno, d.end_col_offset)))
    docstrings = _merged(docstrings)
    spans: Dict[int, List[Tuple[int, int]]] = {}  # line -> the extents of the string literals on it

    def inside(pos: int, ranges) -> bool:
        i = bisect.bisect_right(ranges, (pos, float("inf"))) - 1
        return i >= 0 and ranges[i][0] <= pos < ranges[i][1]

    def is_code(pos: int) -> bool:
        if inside(pos, docstrings):
            return False
        line_start = source.rfind(b"\n", 0, pos) + 1
        h = source.find(b"#", line_start, pos)
        if h == -1:
            return True  # no '#' before it on its line
        line = bisect.bisect_right(starts, pos)
        strings = spans.get(line)
        if strings is None:
            strings = spans[line] = _merged([(offset(n.lineno, n.col_offset), offset(n.end_lineno, n.end_col_offset))
                                             for n in walk_lines(tree, [line])
                                             if isinstance(n, (ast.Constant, ast.JoinedStr))
                                             and isinstance(getattr(n, "value", ""), (str, bytes))] + docstrings)
        while h != -1 and inside(h, strings):
            h = source.find(b"#", h + 1, pos)
        return h == -1  # else after a '#' outside any string: a comment

    return is_code


def walk_lines(tree: Any, lines: Optional[List[int]]) -> Iterator[Any]:
    """``ast.walk(tree)`` without the statements (decorators included) that no line of ``lines``
    (sorted; None: every line) falls in: the same nodes in the same order, less the subtrees that
    cannot hold what is looked for on those lines (a string literal, a fact of the project index)."""
    import ast
    import bisect
    from collections import deque

    def reaches(node: Any) -> bool:
        first = getattr(node, "lineno", None)
        for d in getattr(node, "decorator_list", ()):
            first = d.lineno if first is None else min(first, d.lineno)
        last = getattr(node, "end_lineno", None)
        if first is None or last is None or lines is None:
            return True
        i = bisect.bisect_left(lines, first)
        return i < len(lines) and lines[i] <= last

    todo = deque([tree])
    while todo:
        node = todo.popleft()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.stmt, ast.excepthandler)) and not reaches(child):
                continue
            todo.append(child)
        yield node


def _definitions(tree):
    """The module and every class and function definition in ``tree``: the nodes that may have a
    docstring. Only statement bodies are walked (a definition is always a statement), not the
    expressions, which hold most of a tree's nodes."""
    import ast

    if not _SIMPLE_STATEMENTS:
        _SIMPLE_STATEMENTS.update(k for k in vars(ast).values() if isinstance(k, type) and issubclass(k, ast.stmt)
                                  and not {"body", "orelse", "finalbody", "handlers", "cases"} & set(k._fields))
    simple = _SIMPLE_STATEMENTS
    todo = [tree]
    while todo:
        node = todo.pop()
        if type(node) in simple:
            continue  # no statement inside
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, name, None)
            if isinstance(children, list):
                todo.extend(c for c in children if isinstance(c, (ast.stmt, ast.excepthandler, ast.match_case)))


_SIMPLE_STATEMENTS: Set[type] = set()  # the statement types with no statement in them (filled on first use)


def _merged(ranges):
    """Sorted, non-overlapping (start, end) ranges covering the same positions."""
    out = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


_LAST_TREES: list = []  # [(source, its ast)], newest last: a candidate's scan, slicing and project facts parse it once


def parse_tree(source: bytes):
    """``ast.parse(source)``, or None when it does not parse. The last two files' trees are kept, so
    the comment/docstring check, the slicing (``slicing.py``, which also parses the reduced module)
    and the project facts of the same candidate share one parse. Callers must not change the tree."""
    import ast

    for cached, tree in _LAST_TREES:
        if cached is source or (len(cached) == len(source) and cached == source):
            return tree
    try:
        with collector_paused():
            tree = ast.parse(source)
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
        tree = None
    _LAST_TREES.append((source, tree))
    del _LAST_TREES[:-2]
    return tree


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a parser builds a tree: it allocates hundreds of
    thousands of objects, none in a cycle, and each collection the allocations set off would walk
    them for nothing (~15 % of ``ast.parse``, ~6 % of LibCST's parse)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def line_starts(source: bytes) -> List[int]:
    """The offset of each line of ``source`` (split at ``\n``), and one past the end: line ``n``
    (1-based) is ``source[starts[n - 1]:starts[n]]``."""
    starts = [0]
    for line in source.split(b"\n"):
        starts.append(starts[-1] + len(line) + 1)
    return starts
