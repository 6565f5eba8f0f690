"""Facts about a whole project that a rule needs while it ports one file.

One cheap pass over every Python file of the project with the standard library's ``ast`` (not
LibCST: about a millisecond a file), before any file is rewritten:

* classes, with the names of their bases as written and the methods, properties and class
  attributes they define (notably ``cuda``, ``to``, ``is_cuda``, ``device``), and, for ``to``,
  whether it takes the device positionally only (``def to(self, dev)``);
* classes whose instances the project passes to ``torch.jit.script(...)`` (scripted modules);
* module-level device helpers: functions that return a CUDA device or device string;
* ``torch.load`` calls without ``map_location``;
* whether the file uses CUDA (``torch.cuda``, ``.cuda()``, ``.is_cuda``, a ``'cuda'`` device string).

The index is plain data (picklable: it travels to worker processes) and is cached on disk in the
user cache folder (``cache_file``), one entry per file keyed by the hash of its content, so a
pre-commit run on one staged file sees the same project as a whole-tree run, cheaply. A cache that
cannot be read or written is ignored; the facts never depend on it. The project root is the nearest folder, from the files
given, that holds ``pyproject.toml``, ``setup.py``, ``setup.cfg`` or ``.git``.
"""

from __future__ import annotations

import ast
import hashlib
import os
import pickle
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple, cast

from .trigger import MAY_HOLD_DEVICE_STRING
from .trigger import walk_lines as _walk_lines

VERSION = 3  # bump whenever what index_source extracts changes: cached entries of another version are ignored
ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
_CUDA_STRING = re.compile(r"cuda(:\d+)?")
#: Methods and attributes of a class that decide how ``.cuda()`` / ``.is_cuda`` on it may be ported.
DEVICE_MEMBERS = ("cuda", "to", "is_cuda", "device", "cpu")
MODULE_BASES = frozenset({"nn.Module", "torch.nn.Module", "Module", "torch.jit.ScriptModule", "jit.ScriptModule",
                          "ScriptModule"})


@dataclass(frozen=True)
class ClassInfo:
    name: str
    bases: Tuple[str, ...]  # dotted names as written (``nn.Module``, ``Base``)
    members: FrozenSet[str]  # device members defined (def, property or class/instance attribute)
    to_positional_only: bool = False  # ``def to(self, dev)``: no ``device=`` keyword
    script_class: bool = False  # a ScriptModule subclass


@dataclass(frozen=True)
class FileInfo:
    classes: Tuple[ClassInfo, ...] = ()
    device_helpers: Tuple[str, ...] = ()
    load_sites: Tuple[int, ...] = ()  # lines of ``torch.load(...)`` without ``map_location``
    uses_cuda: bool = False
    scripted: Tuple[str, ...] = ()  # class names whose instances are passed to torch.jit.script


@dataclass
class ProjectIndex:
    root: Optional[str] = None
    files: Dict[str, FileInfo] = field(default_factory=dict)  # path relative to root (posix) -> facts
    #: Files indexed on demand (``build_index``): key -> (path to read, names of the classes the bytes
    #: may define). Such a file holds no CUDA use and no ``jit.script`` call (``lazy_class_names``): its only
    #: facts are classes and load sites; ``index_source`` runs on it when a rule asks about one of those classes.
    lazy: Dict[str, Tuple[str, FrozenSet[str]]] = field(default_factory=dict)
    _memo: Dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    #: Facts of the lazy files indexed so far (shared by ``merged`` copies: one parse per process).
    _loaded: Dict[str, FileInfo] = field(default_factory=dict, repr=False, compare=False)
    #: key -> content digest (``index_entry``'s) of the bytes each entry of ``files`` was taken from:
    #: ``project_of`` does not index again a file being ported whose bytes are those.
    digests: Dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    # ---- questions the rules ask ----------------------------------------------------------------
    @property
    def uses_cuda(self) -> bool:
        if "uses_cuda" not in self._memo:
            self._memo["uses_cuda"] = any(f.uses_cuda for f in self.files.values())
        return bool(self._memo["uses_cuda"])

    def classes(self, name: str) -> List[ClassInfo]:
        by_name = cast(Optional[Dict[str, List[ClassInfo]]], self._memo.get("classes"))
        if by_name is None:
            by_name = {}
            for f in self.files.values():
                for c in f.classes:
                    by_name.setdefault(c.name, []).append(c)
            self._memo["classes"] = by_name
            lazy_names: Dict[str, List[str]] = {}
            self._memo["lazy_names"] = lazy_names
            for key, (_, names) in self.lazy.items():
                for n in names:
                    lazy_names.setdefault(n, []).append(key)
        pending = cast(Dict[str, List[str]], self._memo["lazy_names"]).pop(name, None)
        if pending:  # lazy files that may define ``name``: indexed now, their classes join the rest
            for key in sorted(pending):
                for c in self._load(key).classes:
                    if c.name == name:
                        by_name.setdefault(name, []).append(c)
        return by_name.get(name, [])

    def _load(self, key: str) -> FileInfo:
        info = self._loaded.get(key)
        if info is None:
            try:
                from .engine import NotRegularFile, read_regular

                source, _ = read_regular(Path(self.lazy[key][0]))
                info = index_source(source)
            except (OSError, NotRegularFile, MemoryError):
                info = _EMPTY
            self._loaded[key] = info
        return info

    def all_files(self) -> Dict[str, FileInfo]:
        """Every file's facts, the lazy files indexed now (what an eager ``build_index`` gives)."""
        out = dict(self.files)
        for key in self.lazy:
            info = self._load(key)
            if info != _EMPTY:
                out[key] = info
        return out

    def scripted_classes(self) -> Set[str]:
        if "scripted" not in self._memo:
            self._memo["scripted"] = {n for f in self.files.values() for n in f.scripted}
        return self._memo["scripted"]  # type: ignore[return-value]

    def device_helpers(self) -> Set[str]:
        """Names of module-level functions, in any file, that return a CUDA device or device string."""
        if "helpers" not in self._memo:
            self._memo["helpers"] = {n for f in self.files.values() for n in f.device_helpers}
        return self._memo["helpers"]  # type: ignore[return-value]

    def defines_anywhere(self, member: str) -> bool:
        # A lazy file holds no word starting with ``cuda``: it defines no such member.
        files = self.files.values() if _needs(member.encode())[0] else self.all_files().values()
        return any(member in c.members for f in files for c in f.classes)

    def mro_members(self, name: str, _seen: Optional[Set[str]] = None) -> Optional[Set[str]]:
        """Device members a project class ``name`` and its project bases define; None when ``name``
        is no project class or (one of its definitions) does not derive from ``torch.nn.Module``."""
        seen = _seen if _seen is not None else set()
        if name in seen:
            return None
        seen.add(name)
        defs = self.classes(name)
        if not defs:
            return None
        out: Set[str] = set()
        for c in defs:
            out |= c.members
            module_base = False
            for b in c.bases:
                if b in MODULE_BASES or b.startswith("nn.") or b.startswith("torch.nn."):
                    module_base = True  # torch's own module classes (nn.Sequential ...) define no override
                    continue
                inner = self.mro_members(b.rpartition(".")[2], seen)
                if inner is None:
                    return None
                out |= inner
                module_base = True
            if not module_base:
                return None
        return out

    def members(self, name: str, _seen: Optional[Set[str]] = None) -> Set[str]:
        """Device members that project class ``name`` or any of its project bases defines."""
        seen = _seen if _seen is not None else set()
        if name in seen:
            return set()
        seen.add(name)
        out: Set[str] = set()
        for c in self.classes(name):
            out |= c.members
            for b in c.bases:
                out |= self.members(b.rpartition(".")[2], seen)
        return out

    def is_plain_module_class(self, name: str) -> bool:
        """A project ``nn.Module`` subclass that overrides none of ``cuda``/``to``/``cpu``."""
        members = self.mro_members(name)
        return members is not None and not (members & {"cuda", "to", "cpu"})

    def merged(self, key: str, info: FileInfo) -> ProjectIndex:
        """This index with one file's facts replaced (the bytes being ported win over the cache)."""
        if self.files.get(key) == info and key not in self.lazy:
            return self
        files = dict(self.files)
        files[key] = info
        lazy = self.lazy
        if key in lazy:
            lazy = dict(lazy)
            del lazy[key]
        return ProjectIndex(self.root, files, lazy, _loaded=self._loaded)

    def key_for(self, path: str) -> str:
        return _key(self.root, path)


# ---- one file --------------------------------------------------------------------------------


def _dotted(node: ast.AST) -> Optional[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _is_cuda_device_expr(node: Optional[ast.AST]) -> bool:
    if node is None:
        return False
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _CUDA_STRING.fullmatch(node.value) is not None
    if isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        return isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("cuda")
    if isinstance(node, ast.IfExp):
        return _is_cuda_device_expr(node.body) or _is_cuda_device_expr(node.orelse)
    if isinstance(node, ast.Call):
        name = _dotted(node.func) or ""
        if name.endswith("device") and node.args:
            return _is_cuda_device_expr(node.args[0])
    return False


def _class_info(node: ast.ClassDef) -> ClassInfo:
    members: Set[str] = set()
    to_positional_only = False
    for stmt in node.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if stmt.name in DEVICE_MEMBERS:
                members.add(stmt.name)
                if stmt.name == "to":
                    a = stmt.args
                    params = [p.arg for p in a.posonlyargs + a.args][1:]
                    kw = [p.arg for p in a.kwonlyargs]
                    to_positional_only = a.kwarg is None and "device" not in params + kw
            if stmt.name == "__init__" or stmt.name in DEVICE_MEMBERS:
                for sub in ast.walk(stmt):  # ``self.is_cuda = ...`` / ``self.device = ...``
                    targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target] if isinstance(sub, (ast.AnnAssign, ast.AugAssign)) else []
                    for t in targets:
                        if (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
                                and t.attr in DEVICE_MEMBERS):
                            members.add(t.attr)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in DEVICE_MEMBERS:
                    members.add(t.id)
    bases = tuple(sys.intern(b) for b in (_dotted(x) for x in node.bases) if b)  # interned: pickled once
    script = any(b.rpartition(".")[2] == "ScriptModule" for b in bases)
    return ClassInfo(sys.intern(node.name), bases, frozenset(members), to_positional_only, script)


_EMPTY = FileInfo()
_PARSE_TRIGGER = re.compile(rb"cuda|load|jit|\bclass\b")
# Every ``class NAME`` statement of a file matches _CLASS_NAME (a superset: strings and comments
# too). A class name with a non-ASCII character (which ``ast`` normalises, NFKC) or a source
# encoding whose multi-byte characters may hold ASCII bytes makes the file be indexed at once.
# (A lookahead: "... a class\nclass Net:" holds two matches. The literal first: a fast scan.)
_CLASS_NAME = re.compile(rb"class(?=[ \t\f\\\r\n]+([A-Za-z_][A-Za-z0-9_]*))")
_ODD_CLASS_NAME = re.compile(rb"class[ \t\f\\\r\n]+[A-Za-z0-9_]*[^\x00-\x7f]")
# What the other facts need in the bytes (whatever the spacing between the parts of a dotted
# name): CUDA use (``.cuda``, ``.is_cuda``, a ``'cuda...'`` string; device helpers follow it)
# ``cuda`` starting a word or ``is_cuda``; a ``jit.script(...)`` call the words ``jit`` and
# ``script``; a ``torch.load``/``th.load`` site the word ``load`` and ``torch`` or ``th``.
_WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _has_word(source: bytes, word: bytes, end: bool = True) -> bool:
    """``re.search(rb"\\b" + word + (rb"\\b" if end else b""), source)``, by a literal scan (faster)."""
    i = source.find(word)
    n = len(word)
    while i >= 0:
        if (i == 0 or source[i - 1] not in _WORD_BYTES) and (
                not end or i + n == len(source) or source[i + n] not in _WORD_BYTES):
            return True
        i = source.find(word, i + 1)
    return False


def _needs(source: bytes) -> Tuple[bool, bool, bool]:
    """Whether ``source`` may hold (CUDA use, a ``jit.script`` call, a ``torch.load`` site)."""
    return (b"is_cuda" in source or _has_word(source, b"cuda", end=False),
            _has_word(source, b"jit") and _has_word(source, b"script"),
            _has_word(source, b"load") and (_has_word(source, b"torch") or _has_word(source, b"th")))


_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_ASCII_SAFE_CODING = re.compile(rb"(?i)(utf[-_]?8|ascii|us[-_]ascii|latin[-_]?1|iso[-_]?8859[-_]?\d+|cp125\d|l1)\b")


def lazy_class_names(source: bytes) -> Optional[FrozenSet[str]]:
    """The names of the classes ``source`` may define, when its facts can only be classes and
    ``torch.load`` sites (``_needs``: no CUDA use, no ``jit.script`` call) and the bytes show every
    class name; None otherwise (the file must be indexed now)."""
    need_cuda, need_jit, _ = _needs(source)
    if need_cuda or need_jit or _ODD_CLASS_NAME.search(source):
        return None
    for line in source.split(b"\n", 2)[:2]:
        m = _CODING.match(line)
        if m and not _ASCII_SAFE_CODING.match(m.group(1)):
            return None
    return frozenset(m.decode("ascii") for m in _CLASS_NAME.findall(source))


def index_source(source: bytes) -> FileInfo:
    """The facts of one file; an empty ``FileInfo`` for a file that does not parse.

    The ``ast`` tree is ``trigger.parse_tree``'s, which keeps the last one: the pre-filter's
    comment/docstring check of the same bytes (a parallel run's scan, a port) does not parse again."""
    if not _PARSE_TRIGGER.search(source):
        return FileInfo()  # no class, no CUDA, no load, no TorchScript: nothing to know, no parse
    from .trigger import parse_tree

    tree = parse_tree(source)
    if tree is None:
        return FileInfo()
    classes: List[ClassInfo] = []
    helpers: List[str] = []
    loads: List[int] = []
    scripted: Set[str] = set()
    constructed: Dict[str, str] = {}  # ``m = Net(...)``: variable -> class name
    uses_cuda = False
    # Classes: module level, in class bodies and in if/try/with blocks (not inside functions).
    todo = list(tree.body)
    while todo:
        stmt = todo.pop()
        if isinstance(stmt, ast.ClassDef):
            info = _class_info(stmt)
            if info.bases or info.members:  # ``class Foo:`` with no device member tells nothing
                classes.append(info)
            todo.extend(stmt.body)
        elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            for name in ("body", "orelse", "finalbody"):
                todo.extend(getattr(stmt, name, ()))
            for handler in getattr(stmt, "handlers", ()):
                todo.extend(handler.body)
    classes.sort(key=lambda c: c.name)
    # The rest only where the bytes can hold it: most files of a project mention none of these.
    # Each kind of fact is looked for only where the bytes can hold it (``_needs``; the ``m = Net()``
    # bindings only serve ``jit.script(m)``), and the walk stops when nothing is left to learn.
    need_cuda, need_jit, need_load = _needs(source)
    walked: Iterable[ast.AST] = ()
    if need_jit:
        walked = ast.walk(tree)  # ``m = Net()`` bindings anywhere, the last one walked winning
    elif need_cuda or need_load:
        walked = _walk_lines(tree, _fact_lines(source))
    for node in walked:
        if (uses_cuda or not need_cuda) and not need_jit and not need_load:
            break
        if isinstance(node, ast.Attribute):
            if node.attr in ("cuda", "is_cuda") and need_cuda:
                uses_cuda = True
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            t = node.targets[0]
            if need_jit and isinstance(node.value, ast.Call) and isinstance(t, ast.Name):
                f = _dotted(node.value.func)
                if f:
                    constructed[t.id] = f.rpartition(".")[2]
            # ``device = 'cuda'`` / ``self.device = 'cuda' if ... else 'cpu'``
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
            if need_cuda and not uses_cuda and "dev" in name.lower() and _is_cuda_device_expr(node.value):
                uses_cuda = True
        if isinstance(node, ast.Call):
            name = _dotted(node.func) or ""
            if need_cuda and not uses_cuda:
                # A CUDA device string where a device goes: ``.to('cuda')``, ``torch.device('cuda')``,
                # ``device='cuda:0'``, ``map_location='cuda'``.
                last = name.rpartition(".")[2]
                if (last in ("to", "device") and node.args and _is_cuda_device_expr(node.args[0])) or any(
                        k.arg in ("device", "map_location") and _is_cuda_device_expr(k.value) for k in node.keywords):
                    uses_cuda = True
            if name in ("torch.load", "th.load"):
                if not any(k.arg == "map_location" or k.arg is None for k in node.keywords) and len(node.args) < 2 \
                        and not any(isinstance(a, ast.Starred) for a in node.args):
                    loads.append(node.lineno)
            elif need_jit and name.endswith("jit.script") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Call):
                    f = _dotted(arg.func)
                    if f:
                        scripted.add(f.rpartition(".")[2])
                elif isinstance(arg, ast.Name):
                    scripted.add("\0" + arg.id)  # resolved below
    lines = _fact_lines(source) if uses_cuda else None
    for stmt in tree.body if uses_cuda else ():
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(isinstance(s, ast.Return) and _is_cuda_device_expr(s.value) for s in _walk_lines(stmt, lines)):
                helpers.append(stmt.name)
    resolved = set()
    for s in scripted:
        if s.startswith("\0"):
            if s[1:] in constructed:
                resolved.add(constructed[s[1:]])
            else:
                resolved.add(s[1:])  # ``torch.jit.script(Net)`` or an unknown variable
        else:
            resolved.add(s)
    return FileInfo(tuple(classes), tuple(helpers), tuple(loads), uses_cuda, tuple(sorted(resolved)))


#: What a line must hold for a fact other than TorchScript's to start in a statement on it: ``cuda``
#: (an attribute, a device string), ``load`` (a ``torch.load`` call), or a string that may spell a
#: CUDA device otherwise (``'\x63uda'``, ``'cu' 'da'``: the review pass's precheck).
_FACT_LINE = re.compile(rb"cuda|load|" + MAY_HOLD_DEVICE_STRING.pattern.encode())


def _fact_lines(source: bytes) -> List[int]:
    """The lines (1-based, sorted) on which ``_FACT_LINE`` matches."""
    lines: List[int] = []
    line, pos = 1, 0
    for m in _FACT_LINE.finditer(source):
        line += source.count(b"\n", pos, m.start())
        pos = m.start()
        end = line + source.count(b"\n", m.start(), m.end())
        lines.extend(range(line, end + 1))
    return sorted(set(lines))


# ---- the project -----------------------------------------------------------------------------


def find_root(paths: Sequence[Path]) -> Optional[Path]:
    """The nearest folder at or above the first path that holds a project marker."""
    if not paths:
        return None
    start = Path(os.path.abspath(paths[0]))
    if start.is_file() or not start.exists():
        start = start.parent
    for folder in (start, *start.parents):
        if any((folder / m).exists() for m in ROOT_MARKERS):
            return folder
    return None


def _key(root: Optional[str], path: str) -> str:
    p = os.path.abspath(path)
    if root:
        try:
            return Path(p).relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(p).as_posix()


def _load_cache(path: Path) -> Tuple[Dict[str, object], Dict[Tuple[str, str], object]]:
    """``(entries, plans)`` of the cache file (both empty when it is missing, unreadable or of another
    ``VERSION``). ``plans``: what the parallel scan decided for a candidate it parsed (``engine._scan``:
    the pre-filter's answer and its slice), by content digest and ``plan_signature``."""
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
        if isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("entries"), dict):
            plans = data.get("plans")
            return data["entries"], plans if isinstance(plans, dict) else {}
    except Exception:
        pass
    return {}, {}


def _save_cache(path: Path, entries: Dict[str, object], plans: Optional[Dict[Tuple[str, str], object]] = None) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".index.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"version": VERSION, "entries": entries, "plans": plans or {}}, f,
                        protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except Exception:
        pass  # an unwritable cache only costs time


_CODE_DIGEST: List[str] = []


def plan_signature(target: str, shim_module: str, slice_min_bytes: Optional[int]) -> str:
    """What a cached scan decision depends on besides the file's bytes: the options that shape a
    slice, this Python (its parser) and this tool's own code (every source file of the package, so
    an edited rule or registry entry never meets an old decision)."""
    if not _CODE_DIGEST:
        h = hashlib.sha1(repr(sys.version_info[:2]).encode())
        package = Path(__file__).resolve().parent
        for p in sorted(package.rglob("*.py")):
            h.update(str(p.relative_to(package)).encode())
            try:
                h.update(p.read_bytes())
            except OSError:
                h.update(b"?")
        _CODE_DIGEST.append(h.hexdigest())
    return f"{_CODE_DIGEST[0]}:{target}:{shim_module}:{slice_min_bytes}"


def cache_file(root: Path) -> Optional[Path]:
    """Where the index of the project at ``root`` is cached: ``$TORCHDEVICE_MIGRATE_CACHE`` (a folder;
    ``0``/``off`` turns the cache off), else the user cache folder (``$XDG_CACHE_HOME`` or
    ``~/.cache``) under ``torchdevice-migrate/``; never inside the project, whose tree a run leaves as
    it was apart from the ports."""
    where = os.environ.get("TORCHDEVICE_MIGRATE_CACHE")
    if where is not None and where.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    if where:
        base = Path(where)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg else Path.home() / ".cache"
        base = base / "torchdevice-migrate"
    name = hashlib.blake2b(str(root).encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()
    return base / f"index-{name}.pickle"


def build_index(files: Iterable[Path], root: Optional[Path] = None, cache: bool = True,
                lazy: bool = True) -> ProjectIndex:
    """Index ``files`` (every Python file of the project); content-hash cache per project ``root``.

    ``lazy``: a file whose only facts can be classes (``lazy_class_names``) is not parsed here but
    when a rule asks about a class it may define (``ProjectIndex.classes``): the rules see the same
    facts, and a large project's index costs a byte scan of most files instead of a parse.
    False: every file is parsed now (the reference the tests compare with).

    One file at a time in this process; a parallel run computes the same ``index_entry`` of each
    file in its workers and merges them in the same order (``IndexBuilder``, ``engine._parallel``)."""
    builder = IndexBuilder(root, cache=cache, lazy=lazy)
    for f in files:
        if not str(f).endswith((".py", ".pyi")):
            continue
        try:  # never open a FIFO, socket or device named like a Python file (issue 14): it may block
            from .engine import NotRegularFile, read_regular

            source, _ = read_regular(Path(f))
        except (OSError, NotRegularFile, MemoryError):
            continue
        digest, entry, _ = index_entry(source, builder.old, lazy)
        builder.add(f, digest, entry)
    return builder.finish()


#: What the index keeps of one file: its facts, or ``(class names, keep)`` of a file left lazy.
Entry = object


def index_entry(source: bytes, old: Dict[str, object], lazy: bool = True) -> Tuple[str, Entry, bool]:
    """``(digest, entry, parsed)`` of one file's bytes, as ``build_index`` keeps it: the ``FileInfo``
    (from ``old``, the cache's entries, when it holds this digest), or ``(names, keep)`` for a file whose
    only facts can be classes (``lazy_class_names``; ``keep``: it may hold a class or a load site).
    ``parsed``: ``index_source`` parsed the bytes now (``trigger.parse_tree`` keeps the tree).
    Depends on nothing but its arguments: a worker process computes it as well as the parent."""
    digest = _digest(source)
    cached = old.get(digest)
    if isinstance(cached, FileInfo):
        return digest, cached, False
    if lazy and isinstance(cached, tuple) and len(cached) == 2 and isinstance(cached[0], frozenset):
        return digest, cached, False
    if not _PARSE_TRIGGER.search(source):
        return digest, _EMPTY, False  # no class, no CUDA, no load, no TorchScript: no facts
    names = lazy_class_names(source) if lazy else None
    if names is not None:  # classes (and load sites): indexed when a rule asks about a class
        return digest, (names, bool(names) or _needs(source)[2]), False  # the cache keeps what the byte scan found
    return digest, index_source(source), True


class IndexBuilder:
    """The index of a project, one file's ``index_entry`` at a time, in the project's file order
    (the order decides nothing but is kept: the same index, however its entries were computed)."""

    def __init__(self, root: Optional[Path], cache: bool = True, lazy: bool = True) -> None:
        self.root_s = str(root) if root is not None else None
        self.lazy = lazy
        try:
            self.cache_path = cache_file(root) if (cache and root is not None) else None
        except (OSError, RuntimeError):  # no home folder
            self.cache_path = None
        #: The cache's entries (digest -> entry): ``index_entry`` takes a file's facts from it.
        self.old: Dict[str, object]
        self.old, self.old_plans = _load_cache(self.cache_path) if self.cache_path is not None else ({}, {})
        self.entries: Dict[str, object] = {}  # digest -> FileInfo, or (class names, keep) of a lazy file
        #: (digest, plan_signature) -> the scan's decision for a candidate: filled by ``engine._parallel``
        #: (the decisions this run made or used); None: this run made none, the cache keeps its own.
        self.plans: Optional[Dict[Tuple[str, str], object]] = None
        self.index = ProjectIndex(self.root_s)

    def add(self, f, digest: str, entry: Entry) -> None:
        self.entries[digest] = entry
        if isinstance(entry, tuple):
            names, keep = entry
            if keep:
                self.index.lazy[_key(self.root_s, str(f))] = (os.path.abspath(f), names)
        elif entry != _EMPTY:  # a file with no facts adds nothing (and the index travels to every worker)
            key = _key(self.root_s, str(f))
            self.index.files[key] = cast(FileInfo, entry)
            self.index.digests[key] = digest

    def finish(self) -> ProjectIndex:
        plans = self.plans if self.plans is not None else self.old_plans
        if self.cache_path is not None and (set(self.entries) != set(self.old) or set(plans) != set(self.old_plans)):
            _save_cache(self.cache_path, self.entries, plans)
        return self.index


def project_files(root: Path) -> List[Path]:
    from .engine import discover  # local: engine imports transform, which imports this module

    return list(discover([root], suffixes=(".py", ".pyi")))


@dataclass
class IndexRequest:
    """The index of a project, planned but not built yet: the files to index (the project root's
    files, or the paths' own), the root (None: no project root, no cache) and whether to cache.
    A run builds it (``build``, or its parallel runner over the same files: ``engine._parallel``)."""

    files: List[Path]
    root: Optional[Path] = None
    cache: bool = True
    #: The index, once built (``build``, or the parallel runner).
    built: Optional[ProjectIndex] = field(default=None, repr=False, compare=False)

    def build(self) -> ProjectIndex:
        if self.built is None:
            self.built = build_index(self.files, self.root, cache=self.cache)
        return self.built


def index_request(paths: Sequence[Path], cache: bool = True, walked: Optional[Sequence[Path]] = None) -> IndexRequest:
    """What ``index_for(paths)`` indexes: the files of the project that holds ``paths`` (its root's
    files), or ``paths``' own files when no project root is found above them (no cache then).
    ``walked``: what ``engine.discover(paths)`` (no excludes, every source suffix) found, when the
    caller walked ``paths`` already; it serves instead of a second walk where ``paths`` is the
    project root or no root is found (the same files in the same order)."""
    root = find_root(paths)
    if walked is not None and (root is None or (len(paths) == 1 and os.path.isdir(paths[0])
                                                and os.path.abspath(paths[0]) == str(root))):
        files = [f for f in walked if str(f).endswith((".py", ".pyi"))]
        return IndexRequest(files, root, cache=cache and root is not None)
    if root is None:
        from .engine import discover

        return IndexRequest(list(discover(paths, suffixes=(".py", ".pyi"))), None, cache=False)
    return IndexRequest(project_files(root), root, cache=cache)


def index_for(paths: Sequence[Path], cache: bool = True) -> Optional[ProjectIndex]:
    """The index of the project that holds ``paths`` (its root's files), or of ``paths`` alone
    when no project root is found above them."""
    return index_request(paths, cache=cache).build()


def _digest(source: bytes) -> str:
    return hashlib.blake2b(source, digest_size=16).hexdigest()


def project_of(ctx) -> ProjectIndex:
    """The project as a rule porting ``ctx``'s file sees it: the index given to the run (if any),
    with this file's facts taken from the source being ported. Without an index (a file or a
    string ported on its own), the project is that one file."""
    project = getattr(ctx, "_project", None)
    if project is None:
        base = getattr(ctx, "project_base", None)
        text = getattr(ctx, "source_text", None)
        if text is None:
            text = ctx.module.code
        source = text.encode("utf-8", "surrogatepass")
        key = base.key_for(ctx.path) if base is not None else None
        if base is not None and key in base.files and base.digests.get(key) == _digest(source):
            project = base  # the index was taken from these very bytes
        else:
            info = index_source(source)
            project = ProjectIndex(None, {ctx.path: info}) if base is None else base.merged(cast(str, key), info)
        ctx._project = project
    return project


def in_project_run(ctx) -> bool:
    """True when the run was given a project index (the CLI always builds one)."""
    return getattr(ctx, "project_base", None) is not None
