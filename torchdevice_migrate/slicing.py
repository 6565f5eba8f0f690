"""Port a large file by parsing only what can matter: the functions and docstrings nothing ties to a
CUDA use are set aside before LibCST parses the file, and put back, byte for byte, afterwards; inside
what stays, the passes skip the statements nothing connects to one (issue 12).

LibCST costs ten to twenty times what ``ast.parse`` costs, and a scope analysis and the rules' pass
over every node cost more again; in a real model file the CUDA uses sit in a few of hundreds of
methods. ``plan`` reads the file with ``ast`` and replaces each function defined at module level or
in a class (classes in classes too) that nothing ties to a CUDA use by one line,
``def name(): <placeholder>`` (the name stays bound), methods next to each other by one placeholder
line (unless the class's own level names one of them), and each class or function docstring by one
placeholder line; the rules run on that reduced module; ``Slice.restore`` puts everything back.

A function is kept when its text (decorators and signature included) holds:

* a match of the pre-filter (``trigger.py``: every registry name's word, device indices, the
  ``torch.load`` call of the project trigger) or of the review pass's device-string precheck
  (``'cuda``, ``'cu' 'da'``, escapes that can spell it): the sites a rule rewrites or reports. A
  match in a comment or in a docstring of several words counts for nothing (``trigger.code_positions``,
  what the pre-filter's ``in_code`` reads): no rule acts there and the review pass lists neither;
* a word the rules connect to such a site: a name bound at module or class level by a statement
  that holds a match (``n = torch.cuda.device_count()``; of an import, the names whose own module or
  name matches: ``from torch.cuda import is_available as ok``), what copies it (``world = n``), and a
  name compared with a CUDA device string (``impl == 'cuda'``: the rule looks for ``impl`` compared
  with other words anywhere in the file, ``--impl`` choices included);
* ``global``/``nonlocal`` (a body that binds a module's name), the runtime shim's name (the import
  alias must not collide with a name bound anywhere);
* under ``--target torch``, the names the module-level device value may take (``device``, ...).

Inside the functions that stay, runs of statements that no pass of the port would go into are set
aside the same way, one placeholder line each (``_function_statement_runs``): no match and no
connected name in them, binding no name read where the rules go (to a fixed point, as the scope
analysis needs), and no sibling device name (``return 'cpu'`` beside ``return 'cuda'``) or ``yield``;
a compound statement goes whole or stays whole.

Import-path and environment setup (``sys.path``, ``os.environ``), which the placement of an added
import looks for in the text of each module-level statement, is carried in the placeholder's comment.
Everything else at module or class level stays, every import among it; nested functions stay with the
body around them. ``Slice.skipped`` then names the statements of what stays that the rules' pass, the
review pass and the scope analysis need not go into. What the rules ask about the file as a whole
(the project index's facts about this file, ``jit`` anywhere, the review precheck) is asked of the
whole original text (``Slice.full_text``), and findings' lines are mapped back to the original's.

The reference path (``Options.slice_min_bytes=None``) parses the whole file; ``tests/test_slicing.py``
compares the two on every fixture and rule example (sliced as finely as possible), and
``tests/test_fast_path_equality.py`` on torch's own sources. If the reduced module's port cannot be
restored exactly (a placeholder moved or vanished, or it drops an import a body set aside spells),
the file is ported whole.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from .options import Options
from .project_index import DEVICE_MEMBERS
from .rules.review import MAY_HOLD_DEVICE_STRING
from .transform import _ENV_RE, _PATH_RE
from .trigger import PROJECT_TRIGGER, TRIGGER, code_positions, line_starts, parse_tree

_PLACEHOLDER = b"__tdm_sliced_%d__"
_PLACEHOLDER_RE = re.compile(rb"__tdm_sliced_(\d+)__")
_ALWAYS_KEEP = re.compile(rb"(?<![\w])(?:global|nonlocal)(?![\w])")
#: The module-level device value's names under ``--target torch`` (``targets._DEVICE_NAMES``, ``_device2``...).
_TORCH_TARGET_NAMES = re.compile(rb"(?<![\w])(?:device|DEVICE|_device\d*)(?![\w])")
_NOT_ASCII = re.compile(rb"[\x80-\xff]")


def _may_spell_target_name(text: bytes) -> bool:
    """Whether code of ``text`` may name one of ``_TORCH_TARGET_NAMES``: it spells one, or it is not
    ASCII (the parser folds names to NFKC: ``ｄevice`` is ``device``)."""
    return _TORCH_TARGET_NAMES.search(text) is not None or _NOT_ASCII.search(text) is not None


_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
#: The review pass's precheck (``rules/review.py``): what a CUDA device string's source spells.
_DEVICE_STRING = re.compile(MAY_HOLD_DEVICE_STRING.pattern.encode())
#: Where an added import goes (``transform._earliest_import_position``): after these.
_PATH, _ENV = re.compile(_PATH_RE.pattern.encode()), re.compile(_ENV_RE.pattern.encode())


@dataclass
class _Unit:
    """One function that may be set aside: lines ``start..last`` (1-based, inclusive), decorators included."""

    node: Any  # ast.FunctionDef or ast.AsyncFunctionDef
    start: int
    last: int
    indent: bytes


@dataclass
class _Cut:
    """Lines ``first..last`` (1-based, inclusive) replaced by one line: ``stub``, whose ``%s`` is the
    placeholder; ``nodes``: the functions set aside (none for a docstring)."""

    first: int
    last: int
    stub: bytes
    nodes: Sequence[ast.AST]


@dataclass
class Slice:
    """A reduced module and what it takes to put the original back."""

    reduced: bytes
    #: placeholder number -> the original lines it stands for (with their line endings)
    bodies: List[bytes]
    #: placeholder number -> its line in the reduced module (without the line ending)
    stubs: List[bytes]
    #: (reduced line of placeholder i, lines removed there) in order
    shifts: List[Tuple[int, int]] = field(default_factory=list)
    hidden: List[ast.AST] = field(default_factory=list)
    #: What makes a line matter (``plan``'s keep patterns) and the names that connect lines.
    keep: List[re.Pattern[bytes]] = field(default_factory=list)
    words: Optional[re.Pattern[bytes]] = None
    #: Whether ``hidden_names`` is asked (``--target torch`` names its device value): else ``hidden`` stays empty.
    names_matter: bool = False
    #: The names whose imports the port of the reduced module removes as unused (``transform.py``).
    removed_names: Set[str] = field(default_factory=set)
    _skipped: Optional[Tuple[Any, Tuple[Set[int], Set[int], Set[int]]]] = field(default=None, repr=False)
    #: The names of ``hidden`` nodes already counted (``to_send``), for ``hidden_names``.
    _hidden_names: Set[str] = field(default_factory=set, repr=False)

    def to_send(self) -> Slice:
        """This slice, fit to go to another process (the parallel scan plans a candidate it parsed):
        the nodes set aside are replaced by their names (all ``hidden_names`` reads of them)."""
        self._hidden_names = self.hidden_names()
        self.hidden = []
        return self

    def restore(self, new: bytes) -> Optional[bytes]:
        """The port of the whole file from the port of the reduced one; None when a placeholder is
        not where it can be put back exactly (then the caller ports the whole file)."""
        out: List[bytes] = []
        pos = 0
        seen = 0
        for m in _PLACEHOLDER_RE.finditer(new):
            i = int(m.group(1))
            if i != seen:
                return None
            line_start = new.rfind(b"\n", 0, m.start()) + 1  # (a sliced file has no other line break)
            line_end = new.find(b"\n", m.end())
            end = len(new) if line_end < 0 else line_end + 1
            if new[line_start:end].rstrip(b"\n") != self.stubs[i]:
                return None
            out.append(new[pos:line_start])
            out.append(self.bodies[i])
            pos = end
            seen += 1
        if seen != len(self.bodies):
            return None
        out.append(new[pos:])
        return b"".join(out)

    def skipped(self, module) -> Tuple[Set[int], Set[int], Set[int]]:
        """Ids of statements of ``module`` (the LibCST parse of ``reduced``) that a pass need not go
        into: the rules' pass (no keep match, no connected name), the review pass (no possible device
        string), and the scope analysis and parent map (skipped by the rules, and binding no name
        that a statement the rules go into uses). Functions and classes are gone into, compound
        statements taken whole. All empty when the two parses cannot be paired statement by statement.
        Worked out once per module (a restricted run asks again for the same module)."""
        if self._skipped is not None and self._skipped[0] is module:
            return self._skipped[1]
        result = self._skip_sets(module)
        self._skipped = (module, result)
        return result

    def _skip_sets(self, module) -> Tuple[Set[int], Set[int], Set[int]]:
        tree = parse_tree(self.reduced)
        if tree is None:
            return set(), set(), set()
        starts = line_starts(self.reduced)
        rules = _matching_lines(self.reduced, [*self.keep, *([self.words] if self.words else [])], starts)
        review = _matching_lines(self.reduced, [_DEVICE_STRING], starts)
        outs: Tuple[Set[int], Set[int]] = (set(), set())
        pairs: List[Tuple[object, ast.AST]] = []
        used: Set[str] = set()
        if not _pair(module.body, tree.body, outs, (rules, review), pairs, used):
            return set(), set(), set()
        rules_skip, review_skip = outs
        # What the rules ask about is bound where a rule looks (``x = autocast if amp else nullcontext``
        # before ``with x('cuda')``): a statement that binds a name read where the rules go is kept
        # for the scope analysis, and so are those binding the names it reads, to a fixed point.
        scope_skip: Set[int] = set()
        for node, a in _binding_nothing_read([(node, a) for node, a in pairs if id(node) in rules_skip], used):
            scope_skip.add(id(node))
            if self.names_matter:
                group: List[Any] = a.body if isinstance(a, ast.Module) else [a]
                if _may_spell_target_name(_lines_text(self.reduced, starts, group[0].lineno,
                                                      group[-1].end_lineno or group[-1].lineno)):
                    self.hidden.append(a)  # their names count for hidden_names (no scope lists them)
        return rules_skip, review_skip, scope_skip

    def uses_any(self, names: Set[str]) -> bool:
        """Whether a body set aside spells one of ``names`` (then an import of it cannot be judged
        unused from the reduced module)."""
        words = _words(names)
        return words is not None and any(words.search(body) for body in self.bodies)

    def original_line(self, line: int) -> int:
        """The original's line number of ``line`` of the reduced module."""
        extra = 0
        for at, removed in self.shifts:
            if line > at:
                extra += removed
            else:
                break
        return line + extra

    def full_text(self, code: str) -> str:
        """The whole original text from the reduced module's text (``code``, decoded)."""
        restored = self.restore(code.encode("utf-8", "surrogatepass"))
        return code if restored is None else restored.decode("utf-8", "surrogatepass")

    def hidden_names(self) -> Set[str]:
        """The names ``--target torch`` may give its device value (``device``, ``DEVICE``, ``_device``,
        ``_device2``...: ``_TORCH_TARGET_NAMES``) that are bound or read in the bodies set aside and in
        the statements the scope analysis skips (what a LibCST scope analysis of the whole module would
        also list), for that target's choice of a free name. ``hidden`` holds only the nodes whose
        text may spell one (``_may_spell_target_name``), and none unless ``names_matter``."""
        names: Set[str] = set(self._hidden_names)
        for body in self.hidden:
            for node in _walk(body):
                if isinstance(node, ast.Name):
                    names.add(node.id)
                elif isinstance(node, ast.arg):
                    names.add(node.arg)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.alias):
                    names.add(node.asname or node.name.split(".")[0])
                elif isinstance(node, (ast.Global, ast.Nonlocal)):
                    names.update(node.names)
                elif isinstance(node, ast.ExceptHandler) and node.name:
                    names.add(node.name)
                elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                    names.add(node.name)
                elif isinstance(node, ast.MatchMapping) and node.rest:
                    names.add(node.rest)
        return {n for n in names if _TORCH_TARGET_NAMES.fullmatch(n.encode("utf-8", "surrogatepass"))}


def plan(source: bytes, options: Options) -> Optional[Slice]:
    """The reduced module for ``source``, or None when slicing would not pay or is not exact."""
    minimum = options.slice_min_bytes
    if minimum is None or len(source) < minimum:
        return None
    head = source[:source.find(b"\n", source.find(b"\n") + 1) + 1] if b"\n" in source else source
    for line in head.splitlines()[:2]:
        m = _CODING.match(line)
        if m and m.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8", b"utf-8-sig"):
            return None  # offsets in another encoding: port the whole file
    if b"\r" in source or b"\f" in source or b"\x00" in source or source.startswith(b"\xef\xbb\xbf"):
        return None  # lines as ast counts them only
    tree = parse_tree(source)
    if tree is None:
        return None
    starts = line_starts(source)
    units = list(_units(tree.body, source, starts))
    keep, marks = _keep_patterns(options, tree)
    # A match in a comment or a docstring of several words (``code_positions``, as the pre-filter's
    # ``in_code`` reads the file) keeps nothing: no rule acts there, and the review pass lists neither;
    # nor does a project-trigger call that cannot be the name's (``json.load(f)``: ``ProjectTrigger``).
    is_code = code_positions(source, tree, starts)
    project = set(PROJECT_TRIGGER.patterns)
    precise = {m.start() for m in PROJECT_TRIGGER.finditer(source)}
    matches = [(p, m) for p in keep for m in p.finditer(source)]  # one pass of each keep pattern
    hit_lines = _lines_of([m for p, m in matches if is_code(m.start()) and (p not in project or m.start() in precise)],
                          starts)

    def stub(prefix: bytes, first: int, last: int) -> bytes:
        """``prefix`` and, after the placeholder, a comment that spells the marks of the text set aside."""
        body = text(first, last)
        found = sorted({m.group(0) for p in marks for m in p.finditer(body)})
        return prefix + b"%s" + (b"  # " + b" ".join(found) if found else b"")

    def text(first: int, last: int) -> bytes:
        return source[starts[first - 1]:starts[last] - 1 if last < len(starts) - 1 else len(source)]

    def has_hit(first: int, last: int) -> bool:
        return _any_within(hit_lines, first, last)

    candidates = [u for u in units if not has_hit(u.start, u.last)]
    string_lines = _lines_of([m for p, m in matches if p is _DEVICE_STRING], starts)
    tainted = _tainted(tree, source, starts, has_hit, units, string_lines, keep)
    words = _words(tainted)
    if words is not None:
        candidates = [u for u in candidates if words.search(text(u.start, u.last)) is None]
    hidden = {id(u.node) for u in candidates}
    # Methods set aside next to each other in a class go as one placeholder line, unless the class's
    # own level (its statements, the decorators and signatures of the methods that stay: what sees the
    # class scope) names one of them; a function at module level keeps a ``def`` of its name.
    cuts: List[_Cut] = []
    merged: Set[int] = set()
    by_id = {id(u.node): u for u in candidates}
    for cls in _classes(tree.body):
        level = None
        run: List[_Unit] = []
        for node in [*cls.body, None]:
            if node is not None and id(node) in hidden:
                run.append(by_id[id(node)])
                continue
            if len(run) >= 2 and all(u.indent == run[0].indent for u in run):
                if level is None:
                    level = _class_level_text(cls, source, starts, hidden)
                names = _words({u.node.name for u in run})
                if names is not None and names.search(level) is None:
                    cuts.append(_Cut(run[0].start, run[-1].last, stub(run[0].indent, run[0].start, run[-1].last),
                                     [u.node for u in run]))
                    merged.update(id(u.node) for u in run)
            run = []
    cuts += [_Cut(u.start, u.last, stub(u.indent + (b"async def " if isinstance(u.node, ast.AsyncFunctionDef)
                                                    else b"def ") + u.node.name.encode() + b"(): ",
                                         u.start, u.last), [u.node]) for u in candidates if id(u.node) not in merged]
    # Docstrings of classes and of the functions that stay: strings no rule reads unless they spell a
    # device (the review pass).
    docstrings_gone: Set[int] = set()
    for doc, indent in _docstrings(tree.body, source, starts, hidden):
        if not has_hit(doc.lineno, doc.end_lineno or doc.lineno):
            docstrings_gone.add(id(doc))
            cuts.append(_Cut(doc.lineno, doc.end_lineno or doc.lineno, stub(indent, doc.lineno, doc.end_lineno or doc.lineno), []))
    cuts += _class_level_runs(tree, source, starts, hidden, has_hit, words, stub)
    statement_words = _words(_statement_taint(tree, source, starts, has_hit, tainted, keep))
    gone = {id(n) for c in cuts for n in c.nodes} | docstrings_gone
    rule_lines = _lines_of([m for _, m in matches] + list(statement_words.finditer(source) if statement_words else ()),
                           starts)
    cuts += _function_statement_runs(tree, source, starts, gone, rule_lines, stub)
    if sum(starts[min(c.last, len(starts) - 1)] - starts[c.first - 1] for c in cuts) < minimum // 2:
        cuts = []  # not worth a second parse; the rules still skip the statements nothing can touch
    piece = _reduce(source, starts, cuts, options.target == "torch")
    piece.keep = keep
    piece.words = statement_words
    return piece


#: Class-level statements a run may hold: assignments (fields, enum members, constants), ``pass`` and
#: bare strings. Other statements (calls, ``if``...) end a run.
_RUN_STATEMENTS = (ast.Assign, ast.AnnAssign, ast.Pass)


def _class_level_runs(tree: ast.Module, source: bytes, starts: List[int], hidden: Set[int], has_hit,
                      words: Optional[re.Pattern[bytes]], stub) -> List[_Cut]:
    """Runs of statements at class level (two or more, whole lines each) that nothing ties to a CUDA
    use (no match, no connected name) and whose names nothing else at the class level reads (its other
    statements, the decorators and signatures of the methods that stay): one placeholder line each.
    The class scope then lacks those names, which no rule asks about (a method's body does not see
    the class scope); the names that decide how a class's ``cuda``/``to`` are ported never go."""
    cuts: List[_Cut] = []

    def alone(node: ast.stmt) -> bool:  # the statement has its lines to itself, and nothing ties it
        last = node.end_lineno or node.lineno
        return (_alone_on_its_lines(node, source, starts) and not has_hit(node.lineno, last)
                and (words is None or words.search(_lines_text(source, starts, node.lineno, last)) is None))

    for cls in _classes(tree.body):
        body = cls.body
        first = 1 if body and _is_docstring(body[0]) else 0  # a docstring has its own placeholder
        out: Dict[int, Tuple[ast.stmt, Set[str]]] = {}
        for node in body[first:]:
            string = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            if (isinstance(node, _RUN_STATEMENTS) or string) and alone(node):
                names = _bound_names(node)
                if not names.intersection(DEVICE_MEMBERS):
                    out[id(node)] = (node, names)
        # What stays at the class level reads no name of what goes: a statement whose names it reads
        # stays, and then what it reads counts too, to a fixed point.
        reads: Set[str] = set()
        for node in body:
            if id(node) not in hidden and id(node) not in out:
                reads |= _class_level_reads(node)
        grew = True
        while grew and out:
            grew = False
            for key, (node, names) in list(out.items()):
                if names & reads:
                    del out[key]
                    reads |= _class_level_reads(node)
                    grew = True
        run: List[ast.stmt] = []
        for item in [*body[first:], None]:
            if item is not None and id(item) in out:
                run.append(item)
                continue
            if len(run) >= 2:
                last = run[-1].end_lineno or run[-1].lineno
                indent = source[starts[run[0].lineno - 1]:starts[run[0].lineno - 1] + run[0].col_offset]
                cuts.append(_Cut(run[0].lineno, last, stub(indent, run[0].lineno, last), list(run)))
            run = []
    return cuts


#: What ties a statement inside a function to the rest of it beyond the names the scope analysis
#: sees: a sibling device name (``return 'cpu'`` next to ``return 'cuda'``: ``device_strings._OwnStatements``)
#: and ``yield`` (what makes the function a generator).
_FUNCTION_TIES = re.compile(rb"cpu|mps|(?<![\w])yield(?![\w])")


def _function_statement_runs(tree: ast.Module, source: bytes, starts: List[int], gone: Set[int],
                             rule_lines: List[int], stub) -> List[_Cut]:
    """Runs of statements inside the functions that stay (one placeholder line each) that no pass of
    the port goes into: what ``Slice.skipped`` would tell the rules' pass, the review pass and the
    scope analysis to skip in the reduced module (no line of ``rule_lines``: a match of the keep
    patterns or of the connected names; binding no name read where the rules go, to a fixed point), and that nothing
    else asks about (``_FUNCTION_TIES``). A compound statement goes whole or stays whole; functions
    and classes nested in a function are gone into, as ``_pair`` goes into them. ``gone``: ids of
    the nodes other cuts set aside (functions, class-level runs, docstrings)."""
    used: Set[str] = set()
    pending: List[Tuple[ast.stmt, Optional[ast.AST]]] = []  # (statement, the function whose body holds it)
    todo: List[Tuple[Sequence[ast.stmt], Optional[ast.AST]]] = [(tree.body, None)]  # (body, its function)
    while todo:
        body, function = todo.pop()
        for node in body:
            if id(node) in gone:
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for part in _header_parts(node):
                    used.update(_read_names(part))
                if node.body and node.body[0].lineno > node.lineno:
                    todo.append((node.body, node if not isinstance(node, ast.ClassDef) else None))
                else:  # ``def f(): return 1``: taken whole
                    used.update(_read_names(node))
            elif _any_within(rule_lines, node.lineno, node.end_lineno or node.lineno):
                used.update(_read_names(node))
            else:
                pending.append((node, function))
    free = {id(node) for function, node in _binding_nothing_read([(f, n) for n, f in pending], used)
            if function is not None}
    cuts: List[_Cut] = []

    def runs(function: ast.AST) -> None:
        body = function.body  # type: ignore[attr-defined]
        run: List[ast.stmt] = []
        for node in [*body[1 if _is_docstring(body[0]) else 0:], None]:
            if node is not None and id(node) in free and _alone_on_its_lines(node, source, starts) and _FUNCTION_TIES.search(
                    _lines_text(source, starts, node.lineno, node.end_lineno or node.lineno)) is None:
                run.append(node)
                continue
            if run:
                first, last = run[0].lineno, run[-1].end_lineno or run[-1].lineno
                if last > first or len(run) > 1:  # one short line is no gain
                    indent = source[starts[first - 1]:starts[first - 1] + run[0].col_offset]
                    cuts.append(_Cut(first, last, stub(indent, first, last), list(run)))
            run = []

    seen: Set[int] = set()
    for _, function in pending:
        if function is not None and id(function) not in seen:
            seen.add(id(function))
            runs(function)
    return cuts


def _class_level_reads(node: ast.stmt) -> Set[str]:
    """The names a class-level statement reads or binds in the class scope: every name in it (of a
    function or class, only its decorators, signature or bases: its body is another scope), and
    every word of a string in an annotation (a scope analysis reads ``x: "Foo"`` as ``Foo``)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        parts: List[ast.AST] = [*node.decorator_list, node.args, *([node.returns] if node.returns else [])]
    elif isinstance(node, ast.ClassDef):
        parts = [*node.decorator_list, *node.bases, *node.keywords]
    else:
        parts = [node]
    names: Set[str] = set()
    for part in parts:
        for n in _walk(part):
            if isinstance(n, ast.Name):
                names.add(n.id)
            elif isinstance(n, (ast.AnnAssign, ast.arg)) and n.annotation is not None:
                names.update(w for c in _walk(n.annotation) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                             for w in re.findall(r"\w+", c.value))
    returns = getattr(node, "returns", None)
    if returns is not None:
        names.update(w for c in _walk(returns) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                     for w in re.findall(r"\w+", c.value))
    return names


def _words(names: Set[str]) -> Optional[re.Pattern[bytes]]:
    """A regex for any of ``names`` as a whole word (``attn_impl`` also as ``attn-impl``: an option)."""
    if not names:
        return None
    return re.compile(rb"(?<![\w])(?:" + b"|".join(
        _INNER_UNDERSCORE.sub(rb"[_-]", re.escape(w.encode())) for w in sorted(names, key=lambda w: (-len(w), w)))
        + rb")(?![\w])")


_INNER_UNDERSCORE = re.compile(rb"(?<=[A-Za-z0-9])_(?=[A-Za-z0-9])")  # ``attn_impl``, not ``_`` or ``__init__``


def _all_statements(body: Sequence[ast.stmt]) -> Iterator[_Level]:
    """Every statement, in functions too (``_level_statements`` going into functions)."""
    return _level_statements(body, into_functions=True)


def _statement_taint(tree: ast.Module, source: bytes, starts: List[int], has_hit, tainted: Set[str],
                     keep: Sequence[re.Pattern[bytes]]) -> Set[str]:
    """``tainted`` and the names bound by any statement (in functions too) that holds a match, and
    what copies them (``c = torch.cuda`` then ``d = c``, ``d.synchronize()``): the statements the
    rules' pass must go into are those with a match or one of these names."""
    names = set(tainted)
    aliases = []
    for s in _all_statements(tree.body):
        if has_hit(s.first, s.last):
            names |= _hit_bound(s, source, starts, keep)
        elif isinstance(s.node, (ast.Assign, ast.AnnAssign)) and not s.parts and _alias_root(s.node.value):
            aliases.append(s)
    grew = True
    while grew and aliases:  # copies of copies
        grew, rest = False, []
        for s in aliases:
            if _alias_root(getattr(s.node, "value", None)) in names:
                names |= s.bound()
                grew = True
            else:
                rest.append(s)
        aliases = rest
    names.discard("")
    return names


def _alias_root(value: Optional[ast.AST]) -> Optional[str]:
    """``c`` for ``c``, ``c.x.y``, ``c[0]``: a value that is (part of) what another name holds."""
    while isinstance(value, (ast.Attribute, ast.Subscript)):
        value = value.value
    return value.id if isinstance(value, ast.Name) else None


def _keep_patterns(options: Options, tree: ast.Module) -> Tuple[List[re.Pattern[bytes]], List[re.Pattern[bytes]]]:
    """What keeps a function (``keep``), and what text a function set aside must still show (``marks``)."""
    shim = options.shim_module.rpartition(".")[2]
    patterns = [*TRIGGER.patterns, *PROJECT_TRIGGER.patterns, _DEVICE_STRING, _ALWAYS_KEEP, re.compile(re.escape(shim.encode()))]
    if options.target == "torch":
        patterns.append(_TORCH_TARGET_NAMES)
    # Where an added import goes (``transform._earliest_import_position``): after the first module-level
    # torch import, and after import-path setup for a vendored shim; in a file without one, after the
    # last environment or path setup too, found in the text of each module-level statement, body and
    # all. A placeholder of text that spells one carries it in a comment.
    marks = []
    imports_torch = _imports_torch_on_its_line(tree)
    if not imports_torch or "." in options.shim_module:
        marks.append(_PATH)
    if not imports_torch:
        marks.append(_ENV)
    return patterns, marks


def _imports_torch_on_its_line(tree: ast.Module) -> bool:
    """A module-level ``import torch...``/``from torch... import`` alone on its line (as
    ``transform._imports_torch`` finds it)."""
    body = tree.body
    for i, node in enumerate(body):
        if isinstance(node, ast.Import):
            found = any(a.name.split(".")[0] == "torch" for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found = not node.level and (node.module or "").split(".")[0] == "torch"
        else:
            continue
        if not found:
            continue
        alone = (i == 0 or (body[i - 1].end_lineno or 0) < node.lineno) and \
            (i + 1 == len(body) or body[i + 1].lineno > (node.end_lineno or node.lineno))
        if alone:
            return True
    return False


def _matching_lines(source: bytes, patterns: Sequence[re.Pattern[bytes]], starts: List[int],
                    counts: Optional[Callable[[re.Pattern[bytes], re.Match[bytes]], bool]] = None) -> List[int]:
    """Every line on which a match of ``patterns`` starts or ends, sorted (only the matches that
    ``counts(pattern, match)`` accepts, when given)."""
    return _lines_of((m for p in patterns for m in p.finditer(source) if counts is None or counts(p, m)), starts)


def _lines_of(matches: Iterable[re.Match[bytes]], starts: List[int]) -> List[int]:
    """Every line on which one of ``matches`` starts or ends, sorted."""
    lines = set()
    for m in matches:
        lines.add(bisect.bisect_right(starts, m.start()))
        lines.add(bisect.bisect_right(starts, max(m.end() - 1, m.start())))
    return sorted(lines)


def _lines_text(source: bytes, starts: List[int], first: int, last: int) -> bytes:
    """Lines ``first..last`` (1-based, inclusive) of ``source``, with their line ends."""
    return source[starts[first - 1]:starts[last] if last < len(starts) - 1 else len(source)]


def _alone_on_its_lines(node: ast.stmt, source: bytes, starts: List[int]) -> bool:
    """Whether ``node`` has its lines to itself: only indentation before it, at most a comment after it."""
    last = node.end_lineno or node.lineno
    indent = source[starts[node.lineno - 1]:starts[node.lineno - 1] + node.col_offset]
    rest = source[starts[last - 1] + (node.end_col_offset or 0):starts[last] - 1 if last < len(starts) - 1
                  else len(source)].strip(b" \t\r\n")
    return bool(indent) and not indent.strip(b" \t") and (not rest or rest.startswith(b"#"))


def _is_docstring(node: ast.stmt) -> bool:
    """A bare string statement (as a body's first: its docstring)."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _read_names(node: ast.AST) -> Set[str]:
    """Every plain name under ``node`` (``ast.Name``), read or bound."""
    return {n.id for n in _walk(node) if isinstance(n, ast.Name)}


def _header_parts(node: Any) -> List[ast.AST]:
    """What of a function or class is evaluated where it is defined: decorators, bases and keywords,
    the signature (defaults and annotations), the return annotation."""
    returns, args = getattr(node, "returns", None), getattr(node, "args", None)
    return [*node.decorator_list, *getattr(node, "bases", ()), *getattr(node, "keywords", ()),
            *([args] if args is not None else []), *([returns] if returns else [])]


def _binding_nothing_read(items: Sequence[Tuple[Any, ast.AST]], used: Set[str]) -> List[Tuple[Any, ast.AST]]:
    """Of ``(key, statement)`` items left out of the rules' pass, those binding no name in ``used``
    (the names read where the rules go), to a fixed point: a statement that binds one stays for the
    scope analysis, and then the names it reads count too (``used`` grows)."""
    pending = [(key, a, _binds(a)) for key, a in items]
    grew = True
    while grew:
        grew, rest = False, []
        for key, a, binds in pending:
            if binds & used:
                used.update(_read_names(a))
                grew = True
            else:
                rest.append((key, a, binds))
        pending = rest
    return [(key, a) for key, a, _ in pending]


def _any_within(lines: List[int], first: int, last: int) -> bool:
    """Whether a line of ``lines`` (sorted) falls in ``first..last``."""
    i = bisect.bisect_left(lines, first)
    return i < len(lines) and lines[i] <= last


def _units(body: Sequence[ast.stmt], source: bytes, starts: List[int]) -> Iterator[_Unit]:
    """The functions at module level and in classes (classes in classes too) that begin a line."""
    for node in body:
        if isinstance(node, ast.ClassDef):
            yield from _units(node.body, source, starts)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            end = getattr(node, "end_lineno", None)
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            col = min([node.col_offset] + [d.col_offset - 1 for d in node.decorator_list if d.lineno == start])
            indent = source[starts[start - 1]:starts[start - 1] + col]
            if end is None or indent.strip(b" \t"):
                continue  # something else before it on its line
            yield _Unit(node, start, end, indent)


def _classes(body: Sequence[ast.stmt]) -> Iterator[ast.ClassDef]:
    """The classes at module level and in classes (where ``_units`` finds methods)."""
    for node in body:
        if isinstance(node, ast.ClassDef):
            yield node
            yield from _classes(node.body)


def _class_level_text(cls: ast.ClassDef, source: bytes, starts: List[int], hidden: Set[int]) -> bytes:
    """What of ``cls`` is evaluated in its scope: its statements, and the decorators, signatures and
    bases of the functions and classes in it that stay (not their bodies)."""
    def lines(first: int, last: int) -> bytes:
        return source[starts[first - 1]:starts[min(last, len(starts) - 1)]]

    out: List[bytes] = []
    for node in cls.body:
        if id(node) in hidden:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            body_line = node.body[0].lineno if node.body else node.lineno
            out.append(lines(start, max(start, body_line - 1) if body_line > node.lineno else node.lineno))
        else:
            out.append(lines(node.lineno, getattr(node, "end_lineno", None) or node.lineno))
    return b"".join(out)


def _docstrings(body: Sequence[ast.stmt], source: bytes, starts: List[int],
                skip: Set[int]) -> Iterator[Tuple[ast.stmt, bytes]]:
    """The docstrings of the classes (at module level, in classes) and functions in ``body`` (not
    those in ``skip``, by id) that occupy whole lines of their own, with their indentation."""
    for node in body:
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or id(node) in skip:
            continue
        if isinstance(node, ast.ClassDef):
            yield from _docstrings(node.body, source, starts, skip)
        first = node.body[0] if node.body else None
        if first is None or not _is_docstring(first) or first.end_lineno is None or first.lineno <= node.lineno:
            continue
        line = starts[first.lineno - 1]
        indent = source[line:line + first.col_offset]
        end_line = starts[first.end_lineno] - 1 if first.end_lineno < len(starts) - 1 else len(source)
        rest = source[starts[first.end_lineno - 1] + (first.end_col_offset or 0):end_line]
        if not indent or indent.strip(b" \t") or rest.strip(b" \t\r\n"):
            continue  # something else on its lines
        yield first, indent


def _bound_names(node: ast.AST) -> Set[str]:
    """Names a module- or class-level statement binds (assignment, import, loop or ``with`` target)."""
    names: Set[str] = set()
    for n in _walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            names.add(n.attr)
        elif isinstance(n, ast.alias):
            names.add(n.asname or n.name.split(".")[0])
            if n.asname is None and "." in n.name:
                names.add(n.name.rpartition(".")[2])
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            names.update(n.names)
        elif isinstance(n, ast.NamedExpr) and isinstance(n.target, ast.Name):
            names.add(n.target.id)
    return names


@dataclass
class _Level:
    """A statement at module or class level (``node``), or the header of a compound one (``parts``:
    its loop and ``with`` targets, ``except ... as`` names, tests), spanning lines ``first..last``."""

    node: ast.AST
    first: int
    last: int
    parts: Sequence[ast.AST] = ()

    def bound(self) -> Set[str]:
        if not self.parts:
            return _bound_names(self.node)
        names: Set[str] = set()
        for part in self.parts:
            names |= _bound_names(part)
        return names

    def used(self) -> Set[str]:
        return {name for p in (self.parts or [self.node]) for name in _read_names(p)}


_COMPOUND_BODIES = ("body", "orelse", "finalbody")

def _hit_bound(s: _Level, source: bytes, starts: List[int], keep: Sequence[re.Pattern[bytes]]) -> Set[str]:
    """The names a statement with a match binds that can carry what matched: every name it binds,
    except for an import, where only the names whose own module or name matches do (``from .utils
    import get_device, load_config`` taints ``get_device``, not ``load_config``)."""
    node = s.node
    if s.parts or not isinstance(node, (ast.Import, ast.ImportFrom)) or not node.names:
        return s.bound()
    first = node.names[0]
    if getattr(first, "end_col_offset", None) is None:
        return s.bound()

    def at(line: int, col: int) -> int:
        return starts[line - 1] + col

    def hits(text: bytes) -> bool:
        return any(p.search(text) for p in keep)

    if hits(source[at(node.lineno, node.col_offset):at(first.lineno, first.col_offset)]):
        return s.bound()  # ``from torch.cuda import ...``: every name
    names: Set[str] = set()
    for a in node.names:
        if hits(source[at(a.lineno, a.col_offset):at(a.end_lineno or a.lineno, a.end_col_offset or 0)]):
            names.add(a.asname or a.name.split(".")[0])
            if a.asname is None and "." in a.name:
                names.add(a.name.rpartition(".")[2])
    if not names and not hits(source[at(first.lineno, first.col_offset):at(node.end_lineno or node.lineno, node.end_col_offset or 0)]):
        return s.bound()  # the match is not in one name (it spans them): every name, as before
    return names


def _level_statements(body: Sequence[ast.stmt], into_functions: bool = False) -> Iterator[_Level]:
    """Statements at module level and at class level (classes in classes), not inside functions
    unless ``into_functions``; a compound statement (``if``, ``try``, ``for``, ``with``...) as its
    header and its statements."""
    for node in body:
        if isinstance(node, ast.ClassDef):
            yield from _level_statements(node.body, into_functions)
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if into_functions:
                yield from _level_statements(node.body, into_functions)
            continue
        children = [c for f in _COMPOUND_BODIES for c in getattr(node, f, None) or ()]
        handlers = getattr(node, "handlers", None) or []
        cases = getattr(node, "cases", None) or []
        if not (children or handlers or cases) or not all(isinstance(c, ast.stmt) for c in children):
            yield _Level(node, node.lineno, getattr(node, "end_lineno", None) or node.lineno)
            continue
        inner = [c.lineno for c in children] + [h.lineno for h in handlers] + [c.pattern.lineno for c in cases]
        parts: List[ast.AST] = [getattr(node, f) for f in ("target", "iter", "test", "subject") if getattr(node, f, None)]
        parts += [i for i in getattr(node, "items", None) or ()]
        header_last = max(node.lineno, min(inner) - 1)
        yield _Level(node, node.lineno, header_last, parts or [ast.Pass()])
        for h in handlers:
            h_last = max(h.lineno, h.body[0].lineno - 1) if h.body else h.lineno
            yield _Level(h, h.lineno, h_last, [p for p in (h.type,) if p] + ([ast.Name(h.name, ast.Store())] if h.name else []) or [ast.Pass()])
            yield from _level_statements(h.body, into_functions)
        for c in cases:
            yield _Level(c, c.pattern.lineno, c.body[0].lineno - 1 if c.body else c.pattern.lineno, [c.pattern])
            yield from _level_statements(c.body, into_functions)
        yield from _level_statements(children, into_functions)


def _tainted(tree: ast.Module, source: bytes, starts: List[int], has_hit, units: Sequence[_Unit],
             string_lines: List[int], keep: Sequence[re.Pattern[bytes]]) -> Set[str]:
    statements = list(_level_statements(tree.body))
    tainted: Set[str] = set()
    pending = []
    for s in statements:
        if has_hit(s.first, s.last):
            tainted |= _hit_bound(s, source, starts, keep)
        else:
            pending.append(s)
    changed = bool(tainted)
    while changed and pending:  # ``world = n`` after ``n = torch.cuda.device_count()``
        changed = False
        rest = []
        for s in pending:
            if s.used() & tainted:
                new = s.bound() - tainted
                if new:
                    tainted |= new
                    changed = True
            else:
                rest.append(s)
        pending = rest
    # ``impl == 'cuda'``: the rules look for ``impl`` compared with other words anywhere in the file.
    for s in statements:
        if _any_within(string_lines, s.first, s.last):
            for part in s.parts or [s.node]:
                tainted |= _compared_with_cuda(part)
    for u in units:
        if _any_within(string_lines, u.start, u.last):
            tainted |= _compared_with_cuda(u.node)
    tainted.discard("")
    return tainted


def _compared_with_cuda(top: ast.AST) -> Set[str]:
    """The names of what is compared with a CUDA device string (``impl == 'cuda'``, ``x in ('cuda',
    'mps')``, ``cfg['impl'] != 'cuda'``), as ``base.target_name`` reads them; device-like names
    (``device``, ``x.device.type``) are left out, as ``names_an_implementation`` leaves them."""
    from .rules.base import device_kind_for_name

    words: Set[str] = set()
    for node in _walk(top):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if not any(_is_cuda_string(o) for o in operands):
            continue
        if any(isinstance(o, ast.Attribute) and o.attr == "type"
               and device_kind_for_name(_target_name(o.value)) == "string" for o in operands):
            continue  # ``x.device.type == 'cuda'`` (``device_comparisons.is_device_type_attribute``)
        for o in operands:
            name = _target_name(o)
            if name and not device_kind_for_name(name):
                words.add(name)
    return words


def _is_cuda_string(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "cuda" in node.value.lower()
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_cuda_string(e) for e in node.elts)
    return isinstance(node, ast.JoinedStr)


def _target_name(node: ast.AST) -> Optional[str]:
    """``rules/base.target_name`` on an ``ast`` node: ``impl``, ``args.impl``, ``cfg['impl']``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return None


def _reduce(source: bytes, starts: List[int], cuts: Iterable[_Cut], names_matter: bool) -> Slice:
    """The slice that ``cuts`` make of ``source``; ``names_matter``: the target may name a value
    (``--target torch``), so the nodes set aside are kept for ``hidden_names``."""
    out: List[bytes] = []
    bodies: List[bytes] = []
    stubs: List[bytes] = []
    shifts: List[Tuple[int, int]] = []
    hidden: List[ast.AST] = []
    pos = 0
    removed_so_far = 0
    n_lines = len(starts) - 1
    for c in sorted(cuts, key=lambda c: c.first):
        a = starts[c.first - 1]
        b = min(starts[c.last] if c.last < n_lines else len(source), len(source))
        body = source[a:b]
        newline = b"\n" if body.endswith(b"\n") else b""
        stub = c.stub.replace(b"%s", _PLACEHOLDER % len(bodies), 1)
        out.append(source[pos:a])
        out.append(stub + newline)
        bodies.append(body)
        stubs.append(stub)
        removed = c.last - c.first
        shifts.append((c.first - removed_so_far, removed))
        removed_so_far += removed
        if names_matter and _may_spell_target_name(body):
            hidden.extend(c.nodes)
        pos = b
    out.append(source[pos:])
    return Slice(b"".join(out), bodies, stubs, shifts, hidden, names_matter=names_matter)


def _pair(body, statements: Sequence[ast.stmt], outs: Tuple[Set[int], ...], lines: Tuple[List[int], ...],
          pairs: List[Tuple[object, ast.AST]], used: Set[str]) -> bool:
    """Pairs LibCST's statements with ``ast``'s (a line of ``n`` small statements with ``n`` of them)
    and adds to ``outs[k]`` the ids of those that no line of ``lines[k]`` falls in (``outs[0]``: the
    rules' pass); ``pairs`` gets each statement taken whole with its ``ast`` (a ``Module`` of the
    group for a line), ``used`` the names read in what the rules' pass goes into. False when the two
    parses differ."""
    import libcst as cst

    def mark(node, group: Sequence[ast.stmt]) -> None:
        first, last = group[0].lineno, group[-1].end_lineno or group[-1].lineno
        for out, relevant in zip(outs, lines):
            if not _any_within(relevant, first, last):
                out.add(id(node))
        whole = group[0] if len(group) == 1 else ast.Module(list(group), [])
        pairs.append((node, whole))
        if id(node) not in outs[0]:
            used.update(_read_names(whole))

    i = 0
    for node in body:
        if isinstance(node, cst.SimpleStatementLine):
            group = statements[i:i + len(node.body)]
            i += len(node.body)
            if len(group) != len(node.body):
                return False
            mark(node, group)
            continue
        if i >= len(statements):
            return False
        a: Any = statements[i]
        i += 1
        kinds = _KINDS.get(type(node).__name__)
        if kinds is None or type(a) not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            return False
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            if node.name.value != a.name:
                return False
            # The header (decorators, signature, bases) is always gone into.
            for part in _header_parts(a):
                used.update(_read_names(part))
            if isinstance(node.body, cst.IndentedBlock):
                if not _pair(node.body.body, a.body, outs, lines, pairs, used):
                    return False
            else:
                used.update(_read_names(a))
        else:
            mark(node, [a])
    return i == len(statements)


def _binds(node: ast.AST) -> Set[str]:
    """Every name ``node`` binds in any scope: assignment and loop targets, imports, functions and
    classes, ``except ... as``, ``global``, match captures (``_bound_names`` and these, in one walk)."""
    names: Set[str] = set()
    n: Any
    for n in _walk(node):
        kind = type(n)
        if kind is ast.Name:
            if isinstance(n.ctx, (ast.Store, ast.Del)):
                names.add(n.id)
        elif kind is ast.Attribute:
            if isinstance(n.ctx, ast.Store):
                names.add(n.attr)
        elif kind is ast.arg:
            names.add(n.arg)
        elif kind is ast.alias:
            names.add(n.asname or n.name.split(".")[0])
            if n.asname is None and "." in n.name:
                names.add(n.name.rpartition(".")[2])
        elif kind in (ast.Global, ast.Nonlocal):
            names.update(n.names)
        elif kind is ast.NamedExpr:
            if isinstance(n.target, ast.Name):
                names.add(n.target.id)
        elif kind in (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef):
            names.add(n.name)
        elif kind is ast.ExceptHandler:
            if n.name:
                names.add(n.name)
        elif kind in (ast.MatchAs, ast.MatchStar):
            if n.name:
                names.add(n.name)
        elif kind is ast.MatchMapping:
            if n.rest:
                names.add(n.rest)
    return names


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``node`` and ``node`` itself, as ``ast.walk`` gives them but in no set order
    (every use here collects names into a set), at under half its cost."""
    stack = [node]
    pop, push = stack.pop, stack.append
    base = ast.AST
    while stack:
        n = pop()
        yield n
        for name in n._fields:
            value = getattr(n, name, None)
            if isinstance(value, base):
                push(value)
            elif type(value) is list:
                for v in value:
                    if isinstance(v, base):
                        push(v)


_KINDS = {"FunctionDef": (ast.FunctionDef, ast.AsyncFunctionDef), "ClassDef": ast.ClassDef, "If": ast.If,
          "For": (ast.For, ast.AsyncFor), "While": ast.While, "Try": ast.Try, "TryStar": getattr(ast, "TryStar", ast.Try),
          "With": (ast.With, ast.AsyncWith), "Match": getattr(ast, "Match", ast.If)}
