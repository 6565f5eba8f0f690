"""What a rule is, and the context every rule works with.

A rule is one small class. It implements ``leave_<NodeType>(ctx, original, updated)`` methods that
return a replacement node (through ``ctx.rewrite``) or ``None``. ``original`` carries metadata
(qualified names, positions, parents); ``updated`` is what to build the replacement from.
``VALID``, ``INVALID`` and ``REPORTS`` are its examples: its documentation and its unit tests (see
``Rule`` for their format).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import (
    AbstractSet,
    Any,
    Callable,
    ClassVar,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

import libcst as cst
from libcst._position import CodePosition
from libcst.metadata import (
    Assignment,
    CodeRange,
    ExpressionContextProvider,
    PositionProvider,
    ScopeProvider,
)
from libcst.metadata.expression_context_provider import ExpressionContext
from libcst.metadata.position_provider import NEWLINE_RE, PositionProvidingCodegenState
from libcst.metadata.scope_provider import _ASSIGNMENT_LIKE_NODES, ScopeVisitor

from ..findings import Finding, FindingStatus
from ..registry import REASONS, Api, lookup

SUPPRESS_RE = re.compile(r"#\s*torchdevice:\s*ignore(?:\[(?P<codes>[A-Z0-9,\s]+)\])?")


class Rule:
    """Base class; see the module docstring.

    Examples are the rule's documentation and its unit tests (``tests/test_rule_examples.py``). Each
    one runs with this rule ALONE and the byte pre-filter bypassed
    (``migrate_source(src, options=Options(rules=[TheRule]), prefilter=False)``):

    * ``VALID``: source strings left byte-identical, with no finding at all.
    * ``INVALID``: ``(before, after, codes)`` triples, or ``Example`` objects: ``before`` becomes
      ``after`` (which a second run leaves alone and which compiles), and the run reports exactly
      the reason codes ``codes`` (a multiset: order free, repeats counted). Every ``before`` also
      runs under ``--target torch``: the output compiles and imports only torch and the standard
      library; ``Example.torch`` states that output exactly, ``Example.torch_codes`` its codes.
    * ``REPORTS``: ``(source, codes)`` pairs: left byte-identical and reported with exactly ``codes``.
    """

    #: Short name, used in docs and ``--select``.
    name: ClassVar[str] = ""
    VALID: ClassVar[Sequence[str]] = ()
    INVALID: ClassVar[Sequence[Union[Tuple[Any, ...], Example]]] = ()
    REPORTS: ClassVar[Sequence[Tuple[str, Sequence[str]]]] = ()


@dataclass(frozen=True)
class Example:
    """One INVALID example of a rule (see ``Rule``); a plain ``(before, after, codes)`` triple is the same."""

    before: str
    after: str
    codes: Tuple[str, ...] = ()
    #: The expected ``--target torch`` output; None: not stated (it still must compile and import
    #: nothing but torch and the standard library).
    torch: Optional[str] = None
    #: The reason codes of the ``--target torch`` run; None: the same as ``codes``.
    torch_codes: Optional[Tuple[str, ...]] = None

    @classmethod
    def of(cls, item: Union[Tuple[Any, ...], Example]) -> Example:
        """An ``INVALID`` item as an ``Example`` (a 2-tuple, the old form, has ``codes=None``)."""
        if isinstance(item, Example):
            return item
        if len(item) == 2:
            return cls(item[0], item[1], None)  # type: ignore[arg-type]
        before, after, codes = item  # type: ignore[misc]
        return cls(before, after, tuple(codes))  # type: ignore[arg-type]


@dataclass
class _Rewrite:
    start: Tuple[int, int]
    end: Tuple[int, int]
    finding: Finding
    alone: bool = True  # False: this rewrite alone does not make a file one that uses CUDA


class RuleContext:
    """Per-file state shared by the rules: metadata lookups, the shim import, findings."""

    def __init__(self, wrapper: cst.MetadataWrapper, path: str, shim_alias: str, source_lines: Sequence[str],
                 select: Optional[Set[str]] = None, ignore: Optional[Set[str]] = None,
                 scopes: Optional[Mapping[cst.CSTNode, object]] = None, target: str = "shim") -> None:
        self.module = wrapper.module
        self.target = target  # "shim" or "torch": which column of targets.py the rules write
        self.path = path
        self.shim_alias = shim_alias
        # Metadata. Scopes are needed by every file (qualified names, computed from them per node
        # on first use); positions (a codegen pass over the whole module) only by files with
        # findings, and parents (a walk over the node fields) only by some: both on first use.
        self._scopes = scopes if scopes is not None else resolve_scopes(wrapper.module)
        self._qualname_sets: Dict[cst.CSTNode, frozenset] = {}
        self._qualname_choice: Dict[cst.CSTNode, Optional[str]] = {}
        self._positions: Optional[Mapping[cst.CSTNode, CodeRange]] = None
        self._parents: Optional[Dict[cst.CSTNode, Optional[cst.CSTNode]]] = None
        self.shim_used = False
        self.imports: Set[Tuple[str, Optional[str]]] = set()
        self.rewrites: List[_Rewrite] = []
        self.other_findings: List[Finding] = []
        self.removed_from_imports: Set[Tuple[str, str, Optional[str]]] = set()
        self._suppressed = _suppressions(source_lines)
        self.select = select
        self.ignore = ignore or set()
        self._reported: Set[Tuple[int, int, str]] = set()

    # ---- metadata -------------------------------------------------------------------------
    def qualnames(self, node: cst.CSTNode) -> Set[str]:
        names = self._qualname_sets.get(node)
        if names is None:
            # What QualifiedNameProvider gives, without its pass over the whole module.
            scope = self._scopes.get(node)
            names = frozenset(q.name for q in scope.get_qualified_names_for(node)) if scope else frozenset()  # type: ignore[attr-defined]
            self._qualname_sets[node] = names
        return set(names)

    def qualname(self, node: cst.CSTNode) -> Optional[str]:
        """The one qualified name of ``node`` that the registry or torch knows, if any."""
        cache = self._qualname_choice
        if node in cache:
            return cache[node]
        name = cache[node] = self._choose_qualname(node)
        return name

    def _choose_qualname(self, node: cst.CSTNode) -> Optional[str]:
        names = self.qualnames(node)
        for n in sorted(names):
            if lookup(n) is not None:
                return n
        for n in sorted(names):
            if n == "torch" or n.startswith("torch."):
                return n
        return min(names) if names else None

    def parent(self, node: cst.CSTNode) -> Optional[cst.CSTNode]:
        parents = self._parents
        if parents is None:
            parents = self._parents = _parent_map(self.module, getattr(self, "_parent_skip", frozenset()))
        return parents.get(node)

    def scope(self, node: cst.CSTNode):
        """The LibCST scope of an original node (None for nodes outside any scope)."""
        return self._scopes.get(node)

    def position(self, node: cst.CSTNode) -> Optional[CodeRange]:
        positions = self._positions
        if positions is None:
            positions = self._positions = resolve_positions(self.module)
        return positions.get(node)

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)

    # ---- building -------------------------------------------------------------------------
    def shim(self, name: str) -> cst.Attribute:
        """``runtime_shim.<name>`` (under the alias chosen for this file); schedules the import."""
        self.shim_used = True
        return cst.Attribute(cst.Name(self.shim_alias), cst.Name(name))

    def add_import(self, module: str, obj: Optional[str] = None) -> None:
        """Schedule ``import module`` / ``from module import obj`` (added once, after the rules ran)."""
        self.imports.add((module, obj))

    def shim_call(self, name: str, *args: cst.BaseExpression | cst.Arg) -> cst.Call:
        return cst.Call(self.shim(name), [a if isinstance(a, cst.Arg) else cst.Arg(a) for a in args])

    def is_shim_ref(self, node: cst.CSTNode) -> bool:
        """True for ``runtime_shim.X`` written by us (or a previous run)."""
        return (isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name)
                and node.value.value == self.shim_alias)

    # ---- per target (issue 11; helpers at the end of this module) ----------------------------
    def port(self, api_name: str, variant: str = "") -> Spelling:
        """This file's target cell for a REWRITTEN registry entry (``targets.replacement_for``)."""
        return replacement_for(api_name, self.target, variant)

    def torch_ref(self, text: str) -> cst.BaseExpression:
        """``text`` (``torch.accelerator.synchronize``, ``torch.get_device_module().stream``) as an
        expression under the file's torch alias; schedules ``import torch`` when the file has none."""
        return torch_expression(self, text)

    # ---- findings -------------------------------------------------------------------------
    def allowed(self, original: cst.CSTNode, code: str) -> bool:
        if code in self.ignore or (self.select is not None and not any(code.startswith(s) for s in self.select)):
            return False
        pos = self.position(original)
        if pos is None:
            return True
        for line in range(pos.start.line, pos.end.line + 1):
            codes = self._suppressed.get(line)
            if codes is not None and (not codes or code in codes):
                return False
        return True

    def rewrite(self, original: cst.CSTNode, new: cst.CSTNode, api: str, code: str,
                message: str = "", alone: bool = True) -> Optional[cst.CSTNode]:
        """Record a rewrite of ``original`` into ``new``; returns ``new`` (or None when suppressed).

        ``alone=False`` marks a rewrite that is kept only when the file has other CUDA rewrites
        (a file with no CUDA use is never rewritten)."""
        if not self.allowed(original, code):
            return None
        if in_torchscript(self, original) and f"{self.shim_alias}." in self.module.code_for_node(new):
            # A shim call cannot be scripted: leave the CUDA use, and say so.
            self.report(original, api, FindingStatus.UNSUPPORTED, "TDM214")
            return None
        pos = self.position(original)
        start = (pos.start.line, pos.start.column) if pos else (0, 0)
        end = (pos.end.line, pos.end.column) if pos else (0, 0)
        # A rewrite that replaces an enclosing node subsumes the rewrites made inside it.
        self.rewrites = [r for r in self.rewrites if not (start <= r.start and r.end <= end)]
        finding = Finding(
            path=self.path, line=start[0], column=start[1] + 1, api=api, status=FindingStatus.REWRITTEN,
            code=code, message=message or REASONS[code].title, original=self.code(original),
            replacement=self.module.code_for_node(new), end_line=end[0], end_column=end[1] + 1,
        )
        self.rewrites.append(_Rewrite(start, end, finding, alone))
        return new

    def report(self, original: cst.CSTNode, api: str, status: FindingStatus, code: str,
               message: str = "", hint: str = "") -> None:
        """Record a site left as is (needs review, or unsupported)."""
        if not self.allowed(original, code):
            return
        pos = self.position(original)
        line, col = (pos.start.line, pos.start.column + 1) if pos else (0, 0)
        key = (line, col, code)
        if key in self._reported:
            return
        self._reported.add(key)
        reason = REASONS[code]
        self.other_findings.append(Finding(
            path=self.path, line=line, column=col, api=api, status=status, code=code,
            message=message or reason.description, original=_first_line(self.code(original)),
            hint=torch_hint(hint or reason.hint) if self.target == "torch" else hint or reason.hint,
            end_line=pos.end.line if pos else 0, end_column=pos.end.column + 1 if pos else 0,
        ))

    def report_api(self, original: cst.CSTNode, api: Api) -> None:
        self.report(original, api.name, FindingStatus.UNSUPPORTED, api.code, api.reason, api.hint)

    def findings(self) -> List[Finding]:
        out = [r.finding for r in self.rewrites] + self.other_findings
        return sorted(out, key=lambda f: (f.line, f.column, f.code))

    def rewritten_ranges(self) -> List[Tuple[Tuple[int, int], Tuple[int, int]]]:
        return [(r.start, r.end) for r in self.rewrites]

    def release(self) -> None:
        """Let go of the file (its tree, scopes, positions, parents) once its port is made; the context
        is not to be used again. The scope analysis is a web of reference cycles (a scope holds its
        assignments and accesses, each of which holds the scope, the others and a node), as are
        closures a rule may have made over this context: without this, the whole tree would live on
        until the cyclic garbage collector walks it (``engine.collect_between_files``)."""
        scopes: Set[Any] = {s for s in (self._scopes or {}).values() if s is not None}
        for scope in list(scopes):
            parent = getattr(scope, "parent", None)
            while parent is not None and parent not in scopes and parent is not scope:
                scopes.add(parent)  # the builtin scope above the global one
                scope, parent = parent, getattr(parent, "parent", None)
        for scope in scopes:
            for table in (scope._assignments, scope._accesses_by_name, scope._accesses_by_node):
                for group in table.values():
                    for item in group:
                        links = getattr(item, "_BaseAssignment__accesses", None)
                        if links is None:
                            links = getattr(item, "_Access__assignments", None)
                        if links is not None:
                            links.clear()
                table.clear()
        self.__dict__.clear()


def resolve_scopes(module: cst.Module, skip: AbstractSet[int] = frozenset()) -> Mapping[cst.CSTNode, object]:
    """``MetadataWrapper(module).resolve(ScopeProvider)`` for a module whose nodes are unique.

    The wrapper runs each of ScopeProvider and its dependency ExpressionContextProvider as a
    "batchable" provider: a batched pass over the whole tree whose ``visit_Module`` runs the
    provider's own visitor over the whole tree, after which the batched pass goes on visiting every
    node for nothing (neither provider has another hook). Here the scope visitor runs alone, and
    learns the one context it asks about on its way (``_ScopeVisitor._enter``).

    ``skip``: ids of statements the visitor does not go into (``slicing.Slice.skipped``: nothing in
    them is asked about, and they bind no name that is); their nodes get no scope."""
    scopes = ScopeProvider()
    visitor = _ScopeVisitor(scopes)  # what scopes.visit_Module(module) does
    scopes.metadata = {ExpressionContextProvider: visitor._stores}
    visitor._skip = skip
    module.visit(visitor)
    visitor.infer_accesses()
    scopes.metadata = {}
    return scopes._computed


_FIELD_ORDER: Dict[type, Tuple[str, ...]] = {}


class _FieldRecorder(cst.CSTVisitor):
    """The fields LibCST visits for one node, in its order (``_visit_and_replace_children``)."""

    def __init__(self, top: cst.CSTNode) -> None:
        super().__init__()
        self.top = top
        self.fields: List[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        pass

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if node is self.top:
            self.fields.append(attribute)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


#: Fields that LibCST visits only when they are not None (an f-string expression's ``format_spec``):
#: without a value, not even their attribute hooks are called. Every other field of a node type is
#: visited, in one order, whatever the values (``tests/test_libcst_internals.py`` holds LibCST to it).
_VISITED_IF_SET = frozenset({"format_spec"})


def _field_order(node: cst.CSTNode) -> Tuple[str, ...]:
    """The fields of ``node``'s type in the order LibCST visits them, learnt once per type from the
    first node met (given a value for each ``_VISITED_IF_SET`` field it lacks)."""
    kind = type(node)
    order = _FIELD_ORDER.get(kind)
    if order is None:
        sample = node
        for name in _VISITED_IF_SET:
            if getattr(node, name, 0) is None:
                sample = sample.with_changes(**{name: ()})
        recorder = _FieldRecorder(sample)
        sample._visit_and_replace_children(recorder)
        order = _FIELD_ORDER[kind] = tuple(recorder.fields)
    return order


class _LeanDispatch:
    """``CSTVisitor``'s traversal for a read-only visitor, with the same calls in the same order, for
    less: each node type's ``visit_<Type>``/``leave_<Type>`` looked up once per visitor class (not
    formatted and looked up per node), no per-attribute hooks (``visit_<Type>_<attr>``) unless
    ``_ATTRIBUTE_HOOKS`` names them, and no node rebuilt. LibCST's ``visit`` rebuilds every node it
    passes (``_visit_and_replace_children``: a new node, validated, for each one), which only a
    transformer needs; here ``on_visit``, LibCST's entry (``module.visit(v)``, and the ``child.visit(self)``
    of the scope visitor's own hooks), walks the node's subtree itself (``_walk``) and tells LibCST not
    to go in, so LibCST's ``on_leave`` that follows has nothing left to do."""

    _ATTRIBUTE_HOOKS: ClassVar[frozenset] = frozenset()
    _visit_fns: ClassVar[Dict[type, Any]]
    _leave_fns: ClassVar[Dict[type, Any]]
    _skip: AbstractSet[int] = frozenset()  # ids of statements not gone into, nor left (resolve_scopes)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._visit_fns, cls._leave_fns = {}, {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        _traverse(node, self._enter, self._exit, bool(self._ATTRIBUTE_HOOKS) and self, self._skip)
        return False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        pass  # LibCST's, right after ``on_visit``: the walk has left the node already

    def _enter(self, node: cst.CSTNode) -> bool:
        kind = type(node)
        fns = self._visit_fns
        if kind in fns:
            fn = fns[kind]
        else:
            fn = fns[kind] = getattr(type(self), f"visit_{kind.__name__}", None)
        return fn is None or fn(self, node) is not False

    def _dispatch_leave(self, node: cst.CSTNode) -> None:
        kind = type(node)
        fns = self._leave_fns
        if kind in fns:
            fn = fns[kind]
        else:
            fn = fns[kind] = getattr(type(self), f"leave_{kind.__name__}", None)
        if fn is not None:
            fn(self, node)

    def _exit(self, original_node: cst.CSTNode) -> None:
        self._dispatch_leave(original_node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        if (type(node).__name__, attribute) in self._ATTRIBUTE_HOOKS:
            getattr(self, f"visit_{type(node).__name__}_{attribute}")(node)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        if (type(original_node).__name__, attribute) in self._ATTRIBUTE_HOOKS:
            getattr(self, f"leave_{type(original_node).__name__}_{attribute}")(original_node)


def _attribute_hooks(cls: type) -> frozenset:
    """(``Type``, ``attr``) of every ``visit_<Type>_<attr>``/``leave_<Type>_<attr>`` that ``cls`` defines
    itself (``CSTVisitor``'s own are empty stubs)."""
    out = set()
    for name in dir(cls):
        for prefix in ("visit_", "leave_"):
            if name.startswith(prefix) and name.count("_") >= 2:
                kind, _, attribute = name[len(prefix):].partition("_")
                if kind[:1].isupper() and attribute and getattr(cls, name) is not getattr(cst.CSTVisitor, name, None):
                    out.add((kind, attribute))
    return frozenset(out)


_ASSIGNMENT_LIKE: Dict[type, bool] = {}

#: Where ``ExpressionContextVisitor`` starts a ``STORE`` visit below a node the scope visitor goes into:
#: the targets of assignments, ``for`` and comprehension loops, ``as`` names (``with``, ``except``).
#: (It also starts one at the names of functions, classes and parameters, which the scope visitor never
#: visits; a comprehension's outermost target it visits without its ``CompFor``.)
_STORE_TARGETS: Dict[type, Callable[[Any], Sequence[cst.CSTNode]]] = {
    cst.Assign: lambda n: [t.target for t in n.targets],
    cst.AnnAssign: lambda n: [n.target],
    cst.AugAssign: lambda n: [n.target],
    cst.NamedExpr: lambda n: [n.target],
    cst.AsName: lambda n: [n.name],
    cst.For: lambda n: [n.target],
    cst.CompFor: lambda n: [n.target],
    cst.ListComp: lambda n: [n.for_in.target],
    cst.SetComp: lambda n: [n.for_in.target],
    cst.DictComp: lambda n: [n.for_in.target],
    cst.GeneratorExp: lambda n: [n.for_in.target],
}


def _mark_stores(node: cst.CSTNode, out: Dict[cst.CSTNode, object]) -> None:
    """What ``ExpressionContextVisitor`` in ``STORE`` context marks ``STORE`` below a target: its names,
    through tuples, lists and starred elements; not inside an attribute or a subscript (their value
    and slice are loaded)."""
    kind = type(node)
    if kind is cst.Name:
        out[node] = ExpressionContext.STORE
    elif kind is not cst.Attribute and kind is not cst.Subscript:
        for child in node.children:
            _mark_stores(child, out)


class _ScopeVisitor(_LeanDispatch, ScopeVisitor):
    """LibCST's scope visitor, walked lean. The one thing it asks of ExpressionContextProvider is
    whether a name it visits is stored (``visit_Name``: ``LOAD``, ``DEL`` and no context all count as
    an access), so instead of that provider's pass over the whole tree, each target is marked when
    the visitor enters the node that holds it, before any name below that node is visited
    (``_stores``, its ``ExpressionContextProvider`` metadata)."""

    _ATTRIBUTE_HOOKS = _attribute_hooks(ScopeVisitor)

    def __init__(self, provider: ScopeProvider) -> None:
        super().__init__(provider)
        self._stores: Dict[cst.CSTNode, object] = {}

    def _enter(self, node: cst.CSTNode) -> bool:
        targets = _STORE_TARGETS.get(type(node))
        if targets is not None:
            for target in targets(node):
                _mark_stores(target, self._stores)
        return super()._enter(node)

    def _exit(self, original_node: cst.CSTNode) -> None:  # ScopeVisitor.on_leave, one isinstance per type
        self.provider.set_metadata(original_node, self.scope)
        kind = type(original_node)
        like = _ASSIGNMENT_LIKE.get(kind)
        if like is None:
            like = _ASSIGNMENT_LIKE[kind] = isinstance(original_node, _ASSIGNMENT_LIKE_NODES)
        if like:
            self.scope._assignment_count += 1
        self._dispatch_leave(original_node)


class _PositionState(PositionProvidingCodegenState):
    """LibCST's state for PositionProvider, with the same results for less work per token and node:
    a token without a line break only moves the column (no regular expression split), the
    syntactic-position context manager is a plain object rather than a generator, and a node's
    range is kept as four ints (``_Positions`` makes the ``CodeRange`` of the few nodes asked about)."""

    __slots__ = ()

    def _update_position(self, value: str) -> None:
        if "\n" in value or "\r" in value:
            segments = NEWLINE_RE.split(value)
            self.line += len(segments) - 1
            self.column = len(segments[-1])
        else:
            self.column += len(value)

    def add_token(self, value: str) -> None:
        self.tokens.append(value)
        self._update_position(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._stack.append((self.line, self.column))  # type: ignore[arg-type]

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self._stack.pop()
        computed = self.provider._computed
        if node not in computed:  # a syntactic position recorded inside wins
            computed[node] = (*start, self.line, self.column)  # type: ignore[assignment,misc]

    def record_syntactic_position(  # type: ignore[override]  # a plain context manager, not a generator
            self, node: cst.CSTNode, *, start_node: Optional[cst.CSTNode] = None,
            end_node: Optional[cst.CSTNode] = None) -> _SyntacticPosition:
        return _SyntacticPosition(self, node, start_node, end_node)


class _SyntacticPosition:
    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: _PositionState, node: cst.CSTNode, start_node: Optional[cst.CSTNode],
                 end_node: Optional[cst.CSTNode]) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = (self.state.line, self.state.column)

    def __exit__(self, *exc: object) -> None:
        state = self.state
        computed: Any = state.provider._computed
        start = computed[self.start_node][:2] if self.start_node is not None else self.start
        end = computed[self.end_node][2:] if self.end_node is not None else (state.line, state.column)
        computed[self.node] = (*start, *end)


class _Positions(Mapping):
    """Node -> ``CodeRange`` over the four ints ``_PositionState`` records (made on first access)."""

    __slots__ = ("_raw", "_made")

    def __init__(self, raw: Dict[cst.CSTNode, Tuple[int, int, int, int]]) -> None:
        self._raw = raw
        self._made: Dict[cst.CSTNode, CodeRange] = {}

    def __getitem__(self, node: cst.CSTNode) -> CodeRange:
        made = self._made.get(node)
        if made is None:
            a, b, c, d = self._raw[node]
            made = self._made[node] = CodeRange(CodePosition(a, b), CodePosition(c, d))
        return made

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, node: object) -> bool:
        return node in self._raw


def resolve_positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """``MetadataWrapper(module).resolve(PositionProvider)`` (see ``_PositionState``)."""
    return positions_and_code(module)[0]


def positions_and_code(module: cst.Module, texts: Optional[StatementTexts] = None
                       ) -> Tuple[Mapping[cst.CSTNode, CodeRange], str]:
    """``resolve_positions(module)`` and ``module.code`` from one code generation; ``texts`` gets the
    code of each module-level statement from the same generation."""
    provider = PositionProvider()
    state = _PositionState(default_indent=module.default_indent, default_newline=module.default_newline,
                           provider=provider)
    if texts is None:
        module._codegen(state)
    else:  # Module._codegen(state), with the tokens of each statement noted
        tokens = state.tokens
        state.before_codegen(module)
        for h in module.header:
            h._codegen(state)
        for statement in module.body:
            start = len(tokens)
            statement._codegen(state)
            texts.note(statement, "".join(tokens[start:]))
        for f in module.footer:
            f._codegen(state)
        if module.has_trailing_newline:
            if len(tokens) == 0:
                state.add_token(state.default_newline)
        else:
            state.pop_trailing_newline()
        state.after_codegen(module)
    return _Positions(provider._computed), "".join(state.tokens)  # type: ignore[arg-type]


class StatementTexts:
    """The code of module-level statements, by node, as one code generation of their module gave it
    (``positions_and_code``): a module that holds them (the port, in which most statements are the
    original nodes) is generated again only where it differs. A statement's code does not depend on
    its place in the module (``Module.code_for_node``)."""

    def __init__(self) -> None:
        self._texts: Dict[int, Tuple[cst.CSTNode, str]] = {}  # id -> (node, code): the node kept alive

    def note(self, statement: cst.CSTNode, text: str) -> None:
        self._texts[id(statement)] = (statement, text)

    def of(self, module: cst.Module, statement: cst.CSTNode) -> str:
        """``module.code_for_node(statement)``."""
        known = self._texts.get(id(statement))
        return known[1] if known is not None and known[0] is statement else module.code_for_node(statement)

    def code(self, module: cst.Module) -> str:
        """``module.code``."""
        if not module.has_trailing_newline:
            return module.code
        parts = [module.code_for_node(h) for h in module.header]
        parts += [self.of(module, s) for s in module.body]
        parts += [module.code_for_node(f) for f in module.footer]
        return "".join(parts) or module.default_newline


def _node_types() -> frozenset:
    found, todo = set(), [cst.CSTNode]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                todo.append(sub)
    return frozenset(t for t in found if dataclasses.is_dataclass(t))


_NODE_TYPES = _node_types()
_NODE_FIELDS: Dict[type, Tuple[str, ...]] = {}


def _parent_map(module: cst.Module, skip: AbstractSet[int] = frozenset()) -> Dict[cst.CSTNode, Optional[cst.CSTNode]]:
    """Node -> parent for every node of ``module``: what ParentNodeProvider gives (there, the parent
    of each of a node's ``children``), from the nodes' dataclass fields, without that provider's
    visitor pass, which rebuilds every node twice (LibCST's ``children`` is such a rebuild).
    ``skip``: ids of statements whose own nodes nothing asks about (``resolve_scopes``): not gone into."""
    parents: Dict[cst.CSTNode, Optional[cst.CSTNode]] = {module: None}
    todo: List[cst.CSTNode] = [module]
    pop, push = todo.pop, todo.append
    node_types, fields_of = _NODE_TYPES, _NODE_FIELDS
    while todo:
        node = pop()
        cls = type(node)
        names = fields_of.get(cls)
        if names is None:
            names = fields_of[cls] = tuple(f.name for f in dataclasses.fields(cls))
        for name in names:
            value = getattr(node, name)
            kind = type(value)
            if kind in node_types:
                parents[value] = node
                push(value)
            elif kind is tuple or kind is list:
                for child in value:
                    if type(child) in node_types:
                        parents[child] = node
                        if not skip or id(child) not in skip:
                            push(child)
    return parents


def _first_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else text
    return first if len(first) <= 160 else first[:157] + "..."


def _suppressions(lines: Sequence[str]) -> Dict[int, Set[str]]:
    """Line number -> suppressed codes (empty set: all codes) from ``# torchdevice: ignore[...]``."""
    out: Dict[int, Set[str]] = {}
    for i, line in enumerate(lines, start=1):
        if "torchdevice" not in line:
            continue
        m = SUPPRESS_RE.search(line)
        if m:
            codes = m.group("codes")
            out[i] = {c.strip() for c in codes.split(",") if c.strip()} if codes else set()
    return out


# ---- small syntax helpers shared by the rules ------------------------------------------------

CUDA_DEVICE_RE = re.compile(r"cuda(:\d+)?")


def string_value(node: cst.CSTNode) -> Optional[str]:
    """The value of a plain (non-f, non-bytes) string literal, else None."""
    if isinstance(node, cst.SimpleString):
        prefix = node.prefix.lower()
        if "b" in prefix:
            return None
        try:
            value = node.evaluated_value
        except Exception:
            return None
        return value if isinstance(value, str) else None
    if isinstance(node, cst.ConcatenatedString):
        left, right = string_value(node.left), string_value(node.right)
        return left + right if left is not None and right is not None else None
    return None


def is_cuda_device_string(node: cst.CSTNode) -> bool:
    """``'cuda'``, ``'cuda:N'``, ``f'cuda:{i}'``, ``'cuda:%d' % i``, ``'cuda:{}'.format(i)``, ``'cuda:' + str(i)``."""
    value = string_value(node)
    if value is not None:
        return CUDA_DEVICE_RE.fullmatch(value) is not None
    if isinstance(node, cst.FormattedString):
        if "b" in node.prefix.lower():
            return False
        parts = node.parts
        if all(isinstance(p, cst.FormattedStringText) for p in parts):  # f"cuda": an f-string with no fields
            text = "".join(p.value for p in parts if isinstance(p, cst.FormattedStringText))
            return CUDA_DEVICE_RE.fullmatch(text) is not None
        return (len(parts) == 2 and isinstance(parts[0], cst.FormattedStringText)
                and parts[0].value == "cuda:" and isinstance(parts[1], cst.FormattedStringExpression))
    if isinstance(node, cst.BinaryOperation):
        left = string_value(node.left)
        if isinstance(node.operator, cst.Modulo):
            return left is not None and re.fullmatch(r"cuda:%[dis]", left) is not None
        if isinstance(node.operator, cst.Add):
            return left == "cuda:"
        return False
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "format":
        left = string_value(node.func.value)
        return left is not None and re.fullmatch(r"cuda:\{\w*\}", left) is not None
    return False


def is_plain_cuda(node: cst.CSTNode) -> bool:
    return string_value(node) == "cuda"


def is_cpu_string(node: cst.CSTNode) -> bool:
    return string_value(node) == "cpu"


DEVICE_NAME_RE = re.compile(r"(?:.*_)?(?:device|dev)(?:_name|_str)?", re.IGNORECASE)
DEVICE_TYPE_NAME_RE = re.compile(r"(?:.*_)?device_type", re.IGNORECASE)


def keyword_arg(name: str, value: cst.BaseExpression, like: Optional[cst.Arg] = None) -> cst.Arg:
    """``name=value``; keeps the comma and whitespace of ``like`` (the argument it replaces)."""
    arg = cst.Arg(value, keyword=cst.Name(name), equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
    if like is not None:
        arg = arg.with_changes(comma=like.comma, whitespace_after_arg=like.whitespace_after_arg)
    return arg


def is_store_target(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """Whether ``node`` is written, not read: a target (or part of an unpacked target) of ``=``,
    ``+=``, an annotation, ``del``, ``for`` (also in comprehensions) or ``with ... as``."""
    child, parent = node, ctx.parent(node)
    while isinstance(parent, (cst.Tuple, cst.List, cst.Element, cst.StarredElement)):
        child, parent = parent, ctx.parent(parent)
    if isinstance(parent, cst.AssignTarget):
        return True
    if isinstance(parent, (cst.AugAssign, cst.AnnAssign, cst.For, cst.CompFor, cst.Del)):
        return parent.target is child
    return isinstance(parent, cst.AsName) and parent.name is child


def is_reference_site(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """False for import statements, attribute names, the prefix of a longer attribute chain, and
    store targets: the places where a name or attribute is not a use of what it names."""
    parent = ctx.parent(node)
    if isinstance(parent, cst.Attribute) and (parent.attr is node or parent.value is node):
        return False
    p = parent
    while isinstance(p, cst.Attribute):
        p = ctx.parent(p)
    if isinstance(p, (cst.ImportAlias, cst.ImportFrom)):
        return False
    return not is_store_target(ctx, node)


def target_name(node: cst.CSTNode) -> Optional[str]:
    """``device`` for ``device``, ``self.device``, ``args.device``, ``cfg['device']``."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        idx = node.slice[0].slice
        if isinstance(idx, cst.Index):
            return string_value(idx.value)
    return None


def device_kind_for_name(name: Optional[str]) -> Optional[str]:
    """``'string'`` for device-like names, ``'type'`` for device-type-like names, else None."""
    if not name:
        return None
    if DEVICE_TYPE_NAME_RE.fullmatch(name):
        return "type"
    if DEVICE_NAME_RE.fullmatch(name) or name == "map_location":
        return "string"
    return None


class NodeVisitor(cst.CSTVisitor):
    """A read-only visitor without per-attribute hooks (``visit_<Node>_<attr>``): LibCST would
    otherwise format and look up a method name for every field of every node it walks. Run it with
    ``walk(visitor, node)``."""

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        pass

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


def walk(visitor: cst.CSTVisitor, node: cst.CSTNode) -> None:
    """``node.visit(visitor)`` for a read-only visitor: the same calls in the same order, without
    LibCST rebuilding every node it passes (``_LeanDispatch``); the per-attribute calls are left out
    where the visitor's are ``NodeVisitor``'s, which do nothing."""
    attributes = type(visitor).on_visit_attribute is not NodeVisitor.on_visit_attribute or \
        type(visitor).on_leave_attribute is not NodeVisitor.on_leave_attribute
    _traverse(node, visitor.on_visit, visitor.on_leave, attributes and visitor)


def _traverse(node: cst.CSTNode, enter: Any, leave: Any, attributes: Any = None,
              skip: AbstractSet[int] = frozenset()) -> None:
    """What LibCST's ``visit`` does for a read-only visitor, without rebuilding a node: ``enter(node)``
    (True: go into its fields, in LibCST's order), ``leave(node)``, and the visitor ``attributes``'
    ``on_visit_attribute``/``on_leave_attribute`` around each field when it is given (not None/False).
    ``skip``: ids of nodes neither entered nor left."""
    def go(node: cst.CSTNode) -> None:
        if skip and id(node) in skip:
            return
        if enter(node):
            for name in _field_order(node):
                value = getattr(node, name)
                if value is None and name in _VISITED_IF_SET:
                    continue
                if attributes:
                    attributes.on_visit_attribute(node, name)
                if isinstance(value, cst.CSTNode):
                    go(value)
                elif type(value) is tuple or type(value) is list:
                    for child in value:
                        go(child)
                if attributes:
                    attributes.on_leave_attribute(node, name)
        leave(node)

    try:
        go(node)
    finally:
        go = None  # type: ignore[assignment]  # no reference cycle (go -> its cell -> go) to hold the visitor


# ---- TorchScript -------------------------------------------------------------------------------

_JIT_COMPILED = {"torch.jit.script", "torch.jit.script_method", "torch.jit.export", "torch.jit.interface"}
_JIT_PYTHON = {"torch.jit.ignore", "torch.jit.unused"}


def in_torchscript(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """Whether ``node`` (an original node) is compiled by TorchScript, where a runtime shim call
    cannot be scripted: inside a function decorated ``@torch.jit.script``, a method decorated
    ``@torch.jit.script_method`` or ``@torch.jit.export``, or a method of a module class that is
    scripted (a ``torch.jit.ScriptModule`` subclass, or a class the project passes to
    ``torch.jit.script(...)``, per the project index), unless ``@torch.jit.ignore``/``unused``."""
    possible = getattr(ctx, "_jit_possible", None)
    if possible is None:
        text = getattr(ctx, "source_text", None)
        if text is None:
            text = ctx.module.code
        possible = "jit" in text or "ScriptModule" in text
        if not possible:  # a class of this file may be scripted in another file of the project
            from ..project_index import project_of  # local: the index module is optional here

            possible = bool(project_of(ctx).scripted_classes())
        ctx._jit_possible = possible  # type: ignore[attr-defined]
    if not possible:
        return False
    scripted: Optional[Set[str]] = None
    method: Optional[str] = None  # the function directly inside the class being looked at
    current = ctx.parent(node)
    while current is not None:
        if isinstance(current, cst.FunctionDef):
            method = current.name.value
            names = set()
            for d in current.decorators:
                target = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
                names |= ctx.qualnames(target)
            if names & _JIT_PYTHON:
                return False
            if names & _JIT_COMPILED:
                return True
        elif isinstance(current, cst.ClassDef):
            # A scripted instance compiles ``forward`` and what it calls, never ``__init__`` or the
            # Python-side overrides (``cuda``, ``to``, dunders); a ScriptModule subclass compiles
            # only its decorated methods (seen above).
            if method is None or method.startswith("__") or method in ("cuda", "to", "cpu", "extra_repr"):
                return False
            if scripted is None:
                from ..project_index import project_of  # local: the index module is optional here

                scripted = project_of(ctx).scripted_classes()
            if current.name.value in scripted:
                return True
        current = ctx.parent(current)
    return False


# ---- per-target ports (issue 11): torch spellings, statement guards, CPU-unsafe sites ------------
#
# A rule asks ``ctx.port(api, variant)`` for the target's ``Spelling``; under ``--target shim`` it
# writes what it always wrote. Under ``--target torch`` it builds the torch spelling (``ctx.torch_ref``,
# ``device_value``/``device_type_value``) and records it with ``rewrite_ported``, which adds the
# statement guard (``if torch.accelerator.is_available():``) or the TDM115 finding the spelling needs.
# A rule that can guard statements mixes in ``GuardsStatements`` (its ``leave_SimpleStatementLine``
# wraps the guarded lines); a rule never calls ``ctx.shim``/``ctx.shim_call`` under the torch target.

from ..targets import Spelling, _torch_alias, device_type_value, device_value, replacement_for  # noqa: E402

CPU_UNSAFE_CODE = "TDM115"


def torch_alias(ctx: RuleContext) -> str:
    """The name the file's top-level ``import torch [as t]`` binds; ``torch`` (import scheduled) if none."""
    alias = getattr(ctx, "_torch_alias_name", None)
    if alias is None:
        alias = _torch_alias(ctx.module)
        if alias is None:
            ctx.add_import("torch")
            alias = "torch"
        ctx._torch_alias_name = alias  # type: ignore[attr-defined]
    return alias


def torch_expression(ctx: RuleContext, text: str) -> cst.BaseExpression:
    """``text`` parsed, with each attribute chain rooted at the name ``torch`` moved to the file's torch alias."""
    node = cst.parse_expression(text)
    alias = torch_alias(ctx)
    if alias == "torch":
        return node

    class _Alias(cst.CSTTransformer):
        def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
            return updated.with_changes(value=alias) if updated.value == "torch" else updated

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            return True

        def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
            # only the chain's root is torch; an attribute *named* torch stays
            if isinstance(original.attr, cst.Name) and original.attr.value == "torch":
                return updated.with_changes(attr=original.attr)
            return updated

    return node.visit(_Alias())  # type: ignore[return-value]


def device_expression(ctx: RuleContext, at: cst.CSTNode) -> cst.BaseExpression:
    """The torch target's ``{device}`` for a site (``targets.device_value``)."""
    return device_value(ctx, at)


def device_type_expression(ctx: RuleContext, at: cst.CSTNode) -> cst.BaseExpression:
    """The torch target's ``{device_type}`` for a site: ``{device}.type``."""
    return device_type_value(ctx, at)


def statement_of_call(ctx: RuleContext, node: cst.CSTNode) -> Optional[cst.SimpleStatementLine]:
    """The line ``node`` is the whole of, as an expression statement: ``node`` is a call, or the callee
    of one (``torch.cuda.synchronize`` in ``torch.cuda.synchronize()``), whose parent is an ``Expr``
    that is the one statement of a ``SimpleStatementLine``; None anywhere else (values, one-line
    suites such as ``if x: f()``, ``a(); b()``)."""
    parent = ctx.parent(node)
    if isinstance(parent, cst.Call) and parent.func is node:
        node, parent = parent, ctx.parent(parent)
    if not isinstance(node, cst.Call) or not isinstance(parent, cst.Expr) or parent.value is not node:
        return None
    line = ctx.parent(parent)
    if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
        return line
    return None


def guard_statement(ctx: RuleContext, node: cst.CSTNode, guard: str) -> bool:
    """Schedule ``guard`` (``if torch.accelerator.is_available():``) around the line ``node`` is the
    whole of (``statement_of_call``); False when it is not a whole statement. The rule must mix in
    ``GuardsStatements`` so that the line is wrapped when it is left."""
    line = statement_of_call(ctx, node)
    if line is None or not guard:
        return False
    if already_guarded(ctx, line):
        return True
    guards: Dict[cst.CSTNode, str] = ctx.__dict__.setdefault("_statement_guards", {})
    guards[line] = guard
    return True


def apply_statement_guard(ctx: RuleContext, original: cst.SimpleStatementLine,
                          updated: cst.SimpleStatementLine) -> Optional[cst.BaseStatement]:
    """``updated`` under its scheduled guard (an ``if`` that keeps the line's leading lines and
    comments; the line keeps its own trailing comment), or None when none was scheduled."""
    guard = ctx.__dict__.get("_statement_guards", {}).get(original)
    if guard is None:
        return None
    test = guard.strip()
    if test.startswith("if "):
        test = test[3:]
    test = test.rstrip(":").strip()
    guarded = cst.If(
        test=torch_expression(ctx, test),
        body=cst.IndentedBlock([updated.with_changes(leading_lines=())]),
        leading_lines=updated.leading_lines,
    )
    ctx.__dict__.setdefault("_guard_ifs", set()).add(guarded)
    return guarded


def merge_statement_guards(ctx: RuleContext, body: Sequence[cst.BaseStatement]) -> Optional[List[cst.BaseStatement]]:
    """``body`` with each run of adjacent guards this file got (``apply_statement_guard``), with nothing
    between them (no blank line, no comment), merged into one ``if``; None when there is nothing to merge."""
    made: Set[cst.CSTNode] = ctx.__dict__.get("_guard_ifs") or set()
    if not made:
        return None
    out: List[cst.BaseStatement] = []
    merged = False
    for stmt in body:
        prev = out[-1] if out else None
        if (prev is not None and prev in made and stmt in made and not stmt.leading_lines  # type: ignore[attr-defined]
                and cst.Module([]).code_for_node(prev.test) == cst.Module([]).code_for_node(stmt.test)):  # type: ignore[attr-defined]
            joined = prev.with_changes(body=prev.body.with_changes(body=[*prev.body.body, *stmt.body.body]))  # type: ignore[attr-defined]
            made.add(joined)
            out[-1] = joined
            merged = True
        else:
            out.append(stmt)
    return out if merged else None


class GuardsStatements:
    """Mixin for a rule that calls ``rewrite_ported`` on statements that may need a guard: wraps the
    guarded lines, and merges adjacent guards into one ``if``."""

    def leave_IndentedBlock(self, ctx: RuleContext, original: cst.IndentedBlock,
                            updated: cst.IndentedBlock) -> Optional[cst.IndentedBlock]:
        body = merge_statement_guards(ctx, updated.body)
        return updated.with_changes(body=body) if body is not None else None

    def leave_Module(self, ctx: RuleContext, original: cst.Module, updated: cst.Module) -> Optional[cst.Module]:
        body = merge_statement_guards(ctx, updated.body)
        return updated.with_changes(body=body) if body is not None else None

    def leave_SimpleStatementLine(self, ctx: RuleContext, original: cst.SimpleStatementLine,
                                  updated: cst.SimpleStatementLine) -> Optional[cst.BaseStatement]:
        return apply_statement_guard(ctx, original, updated)


def rewrite_ported(ctx: RuleContext, original: cst.CSTNode, new: cst.CSTNode, api: str, code: str,
                   spelling: Spelling, message: str = "", alone: bool = True,
                   guardable: Optional[cst.CSTNode] = None) -> Optional[cst.CSTNode]:
    """``ctx.rewrite`` for a site ported to ``spelling`` (``ctx.port(...)``), plus what a CPU-unsafe
    torch spelling needs: a ``guard`` when ``guardable`` (default ``original``: a call or its callee)
    is a whole expression statement, else a TDM115 finding (status REWRITTEN, message the spelling's
    note) so the report lists the site. Nothing extra under the shim target or for a CPU-safe spelling."""
    result = ctx.rewrite(original, new, api, code, message, alone)
    if result is None or ctx.target != "torch" or spelling.cpu_safe:
        return result
    if spelling.guard and guard_statement(ctx, guardable if guardable is not None else original, spelling.guard):
        return result
    if already_guarded(ctx, original):
        return result  # runs only where an accelerator is available
    report_cpu_unsafe(ctx, original, api, spelling)
    return result


def report_cpu_unsafe(ctx: RuleContext, original: cst.CSTNode, api: str, spelling: Spelling) -> None:
    """The TDM115 finding for a site written in a torch spelling that raises on a CPU-only torch."""
    ctx.report(original, api, FindingStatus.REWRITTEN, CPU_UNSAFE_CODE, spelling.note or REASONS[CPU_UNSAFE_CODE].description)


def report_kept(ctx: RuleContext, original: cst.CSTNode, api: str, spelling: Spelling, code: str) -> None:
    """A site the torch target leaves as it is (``spelling.kept``): reported with ``code`` (a TDM3xx
    review code of the rule), the spelling's note as the hint."""
    ctx.report(original, api, FindingStatus.REVIEW, code, hint=spelling.note)


# ---- torch module names, imports and call arguments (shared by amp, attention, legacy_tensors) ----

# Review code for references that cannot be ported at their site.
REVIEW_CODE = "TDM304"

def scope_of(ctx: RuleContext, node: cst.CSTNode):
    """The LibCST scope of an original node."""
    return ctx.scope(node)


def _binds_torch(node: cst.CSTNode, name: str) -> bool:
    """``import torch`` / ``import torch.cuda`` (binds ``torch``) / ``import torch as name``."""
    if not isinstance(node, cst.Import):
        return False
    for alias in node.names:
        full = cst.helpers.get_full_name_for_node(alias.name) or ""
        asname = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
        if asname is None and (full == "torch" or full.startswith("torch.")) and name == "torch":
            return True
        if asname == name and full == "torch":
            return True
    return False


def root_name(node: cst.CSTNode) -> Optional[cst.Name]:
    while isinstance(node, cst.Attribute):
        node = node.value
    return node if isinstance(node, cst.Name) else None


def torch_name(ctx: RuleContext, at: cst.CSTNode, ref: Optional[cst.CSTNode] = None) -> Optional[str]:
    """The local name of the ``torch`` module usable at ``at`` (an original node), or None.

    Taken from ``ref`` when it is an attribute chain rooted at torch (``th.cuda.amp.autocast``),
    else from an ``import torch [as th]`` visible in the scope of ``at`` and not rebound there.
    """
    if isinstance(ref, cst.Attribute):
        root = root_name(ref)
        if root is not None and ctx.qualname(root) == "torch":
            return root.value
    scope = scope_of(ctx, at)
    if scope is None:
        return None
    candidates: List[str] = ["torch"]
    for assignment in scope.globals.assignments:
        node = getattr(assignment, "node", None)
        if isinstance(node, cst.Import) and assignment.name not in candidates:
            candidates.append(assignment.name)
    for name in candidates:
        assignments = scope[name]
        if assignments and all(isinstance(a, Assignment) and _binds_torch(a.node, name) for a in assignments):
            return name
    return None


def torch_name_or_import(ctx: RuleContext, at: cst.CSTNode, ref: Optional[cst.CSTNode] = None) -> Optional[str]:
    """Like ``torch_name``; when the module does not import torch and nothing in scope is called
    ``torch``, answers ``'torch'`` and schedules ``import torch`` (through ``ctx.add_import``)."""
    name = torch_name(ctx, at, ref)
    if name is not None:
        return name
    scope = scope_of(ctx, at)
    if scope is None or scope["torch"] or scope.globals["torch"]:
        return None
    ctx.add_import("torch")
    return "torch"


def dotted(*parts: str) -> cst.BaseExpression:
    node: cst.BaseExpression = cst.Name(parts[0])
    for p in parts[1:]:
        node = cst.Attribute(node, cst.Name(p))
    return node


def forget_import(ctx: RuleContext, ref: cst.CSTNode, qual: str) -> None:
    """Schedule removal of the import that bound ``ref``'s root name, if it becomes unused.

    ``from torch.cuda.amp import autocast [as ac]``, ``from torch.cuda import amp``,
    ``import torch.cuda.amp as amp``; never ``import torch``.
    """
    root = root_name(ref)
    if root is None:
        return
    scope = scope_of(ctx, root)
    if scope is None:
        return
    for a in scope[root.value]:
        node = getattr(a, "node", None)
        if isinstance(node, cst.ImportFrom) and node.module is not None and not isinstance(node.names, cst.ImportStar):
            module = cst.helpers.get_full_name_for_node(node.module) or ""
            for alias in node.names:
                asname = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
                if (asname or alias.name.value) == root.value:
                    ctx.removed_from_imports.add((module, alias.name.value, asname))  # type: ignore[arg-type]
        elif isinstance(node, cst.Import):
            for alias in node.names:
                full = cst.helpers.get_full_name_for_node(alias.name) or ""
                asname = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else None
                if asname == root.value and full != "torch":
                    ctx.removed_from_imports.add((full, None, asname))  # type: ignore[arg-type]


def split_args(call: cst.Call) -> Optional[Tuple[List[cst.Arg], Dict[str, cst.Arg]]]:
    """Positional and keyword arguments, or None when ``*args``/``**kw`` make the shape unknown."""
    positional: List[cst.Arg] = []
    keywords: Dict[str, cst.Arg] = {}
    for a in call.args:
        if a.star:
            return None
        if a.keyword is None:
            positional.append(a)
        else:
            keywords[a.keyword.value] = a
    return positional, keywords


def with_commas(args: Iterable[cst.Arg]) -> List[cst.Arg]:
    """Arguments with a comma after each but the last (the last keeps its own trailing comma)."""
    args = list(args)
    out = []
    for i, a in enumerate(args):
        if i < len(args) - 1 and not isinstance(a.comma, cst.Comma):
            a = a.with_changes(comma=cst.MaybeSentinel.DEFAULT)
        out.append(a)
    return out


# ---- device idioms (shared by device_strings, device_placement, device_comparisons, unsupported) ----

# Names of variables that hold a device index or a rank used as one (``.to(self.gpu_id)``).
RANK_NAME_RE = re.compile(r"(?:.*_)?(?:gpu|gpu_id|gpu_idx|local_rank|rank|device_id|device_idx|dev_id|cuda_id)",
                          re.IGNORECASE)


def is_available_test(ctx: RuleContext, test: cst.BaseExpression) -> Optional[bool]:
    """True for ``torch.cuda.is_available()``, False for its negation, None otherwise."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        inner = is_available_test(ctx, test.expression)
        return None if inner is None else not inner
    if isinstance(test, cst.Call) and not test.args and ctx.qualname(test.func) == "torch.cuda.is_available":
        return True
    return None


def availability_idiom(ctx: RuleContext, node: cst.IfExp) -> Optional[cst.BaseExpression]:
    """For ``S if torch.cuda.is_available() else 'cpu'`` (or negated), the CUDA branch ``S``."""
    polarity = is_available_test(ctx, node.test)
    if polarity is None:
        return None
    cuda_branch, cpu_branch = (node.body, node.orelse) if polarity else (node.orelse, node.body)
    if is_cpu_string(cpu_branch) and is_cuda_device_string(cuda_branch):
        return cuda_branch
    return None


def shim_args_for(cuda_string: cst.BaseExpression) -> list:
    """No argument for plain ``'cuda'`` (the default), else the string itself."""
    return [] if is_plain_cuda(cuda_string) else [cst.Arg(cuda_string)]


_HANDLES = {"cuda_stream", "cuda_event"}
_IDENTITY = (cst.Equal, cst.NotEqual, cst.Is, cst.IsNot)


def handle_identity_comparison(node) -> bool:
    """``a.cuda_stream == b.cuda_stream`` (also ``!=``, ``is``, ``is not``; ``cuda_event`` alike)."""
    if not (isinstance(node, cst.Comparison) and len(node.comparisons) == 1
            and isinstance(node.comparisons[0].operator, _IDENTITY)):
        return False
    left, right = node.left, node.comparisons[0].comparator
    return (isinstance(left, cst.Attribute) and isinstance(right, cst.Attribute)
            and left.attr.value in _HANDLES and left.attr.value == right.attr.value)


def forget_rewrite(ctx: RuleContext, original: cst.CSTNode) -> None:
    """Drop the rewrite recorded for exactly ``original`` (a rule that restores the original code there)."""
    pos = ctx.position(original)
    if pos is None:
        return
    start, end = (pos.start.line, pos.start.column), (pos.end.line, pos.end.column)
    ctx.rewrites = [r for r in ctx.rewrites if (r.start, r.end) != (start, end)]


_AVAILABILITY = ("torch.cuda.is_available", "torch.accelerator.is_available")


def _tests_availability(ctx: RuleContext, test: cst.BaseExpression, positive: bool) -> bool:
    """Whether ``test`` being ``positive`` implies an accelerator is available (``torch.cuda.is_available()``,
    ``torch.accelerator.is_available()``, an ``and`` holding one, ``not`` of the opposite)."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _tests_availability(ctx, test.expression, not positive)
    if isinstance(test, cst.BooleanOperation):
        if positive and isinstance(test.operator, cst.And):
            return _tests_availability(ctx, test.left, True) or _tests_availability(ctx, test.right, True)
        if not positive and isinstance(test.operator, cst.Or):  # not (a or b): both false
            return _tests_availability(ctx, test.left, False) or _tests_availability(ctx, test.right, False)
        return False
    return (positive and isinstance(test, cst.Call) and not test.args
            and ctx.qualname(test.func) in _AVAILABILITY)


def already_guarded(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """Whether ``node`` (an original node) only runs where an accelerator is available: inside the
    body of ``if torch.cuda.is_available():`` (or the ``else`` of ``if not ...``), the branch of a conditional
    expression chosen when one is, or the right operand of ``torch.cuda.is_available() and ...``; so it needs
    no guard of its own, and a CPU-unsafe spelling there never runs on a CPU-only machine."""
    child, parent = node, ctx.parent(node)
    while parent is not None:
        if isinstance(parent, cst.If):
            if child is parent.body and _tests_availability(ctx, parent.test, True):
                return True
            if child is parent.orelse and isinstance(child, cst.Else) and _tests_availability(ctx, parent.test, False):
                return True
        elif isinstance(parent, cst.IfExp):
            if (child is parent.body and _tests_availability(ctx, parent.test, True)) or (
                    child is parent.orelse and _tests_availability(ctx, parent.test, False)):
                return True
        elif isinstance(parent, cst.BooleanOperation) and child is parent.right:
            if _tests_availability(ctx, parent.left, isinstance(parent.operator, cst.And)):
                return True
        child, parent = parent, ctx.parent(parent)
    return False


# Availability checks of one backend each, and the device name each one vouches for.
_BACKEND_AVAILABLE = {"torch.cuda.is_available": "cuda", "torch.backends.mps.is_available": "mps",
                      "torch.mps.is_available": "mps", "torch.xpu.is_available": "xpu"}


def device_chooser(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """Whether ``node`` (an original node) is a 2- to 4-way device-name chooser that always names the
    available accelerator: ``'cuda' if torch.cuda.is_available() else 'cpu'``, optionally with arms
    ``'mps' if torch.backends.mps.is_available() else ...`` / ``'xpu' if torch.xpu.is_available() else ...``
    in any order, ending in ``'cpu'``; plain names only (no ``'cuda:1'``), CUDA among them."""
    seen: Set[str] = set()
    current = node
    while isinstance(current, cst.IfExp):
        test = current.test
        if not (isinstance(test, cst.Call) and not test.args):
            return False
        backend = _BACKEND_AVAILABLE.get(ctx.qualname(test.func) or "")
        if backend is None or backend in seen or string_value(current.body) != backend:
            return False
        seen.add(backend)
        current = current.orelse
    return "cuda" in seen and is_cpu_string(current)


def free_quote(ctx: RuleContext, node: cst.CSTNode) -> Optional[str]:
    """A quote character that may be written at ``node``: before Python 3.12, an expression inside
    an f-string cannot use the quote that delimits it (``f"{c == "cuda"}"`` does not compile)."""
    used = set()
    p = ctx.parent(node)
    while p is not None:
        if isinstance(p, cst.FormattedString):
            used.add(p.start[-1])
        p = ctx.parent(p)
    return next((q for q in ('"', "'") if q not in used), None)


def cpu_string(ctx: RuleContext, at: cst.CSTNode) -> cst.SimpleString:
    """The literal ``"cpu"`` written at ``at`` (an original node), in a quote that may stand there
    (inside an f-string before Python 3.12, not the f-string's own quote)."""
    quote = free_quote(ctx, at) or '"'
    return cst.SimpleString(f"{quote}cpu{quote}")


# ---- hints under --target torch --------------------------------------------------------------------

#: The registry's and the reason codes' hints name the runtime shim; under ``--target torch`` a report
#: for an upstream pull request names torch's own spellings instead (first match wins, in order).
_TORCH_HINT_WORDS: Tuple[Tuple[str, str], ...] = (
    (r"runtime_shim\.accelerator_type\(\) == 'cuda'", "torch.cuda.is_available()"),
    (r"runtime_shim\.accelerator_type\(\)", "device.type"),
    (r"runtime_shim\.device_type\((\w+)\)", r"\1.device.type"),
    (r"wrap it as `runtime_shim\.device_string\([^)]*\)`", "write `device.type` there"),
    (r"runtime_shim\.device_string\([^)]*\)", "device.type"),
    (r"runtime_shim\.device\(\)", "device"),
    (r"runtime_shim\.Stream\(\)", "torch.Stream()"),
    (r"runtime_shim\.distributed_backend\(\)", "torch.distributed.get_default_backend_for_device(device)"),
    (r"runtime_shim\.worker_count\(\)", "max(torch.accelerator.device_count(), 1)"),
    (r"runtime_shim\.(memory_stats|memory_allocated)\(", r"torch.accelerator.\1("),
    (r"runtime_shim\.(get_device_capability|manual_seed|stream)\(", r"torch.get_device_module().\1("),
    (r"set TORCHDEVICE_DEVICE to force a device", "the device is `torch.accelerator.current_accelerator()`"),
    (r"Use TORCHDEVICE_DEVICE to select a device portably\.", "Select the device in code (`torch.accelerator`)."),
)


def torch_hint(text: str) -> str:
    """``text`` with the runtime shim's spellings replaced by torch's (``device`` is the module's device
    value, ``torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")``); a hint
    that still needs the shim says so."""
    for pattern, repl in _TORCH_HINT_WORDS:
        text = re.sub(pattern, repl, text)
    if "runtime_shim" in text:
        text += " (with `--target shim`)"
    return text


def is_module_device_value(ctx: RuleContext, name: cst.Name) -> bool:
    """Whether ``name`` (an original node) reads a module-level variable bound once to a device value:
    the torch target's ``current_accelerator(check_available=True) or torch.device("cpu")`` or the classic
    ``torch.device("cuda" if torch.cuda.is_available() else "cpu")`` (``targets.device_value`` reuses these)."""
    from ..targets import _is_device_value, _module_assignments

    assigns = _module_assignments(ctx.module).get(name.value)
    if not assigns or len(assigns) != 1 or not _is_device_value(assigns[0].value):
        return False
    scope = ctx.scope(name)
    if scope is None:
        return False
    return all(getattr(a, "scope", None) is scope.globals for a in scope[name.value])


def assigned_values(ctx: RuleContext, name: cst.Name) -> Optional[List[cst.BaseExpression]]:
    """The values ``name`` is given in its scope, when every binding of it there is a plain
    ``name = value``; None when any is something else (a parameter, an import, a loop or unpacking
    target, ``a = b = ...``) or the scope is unknown. An unbound name gives ``[]``."""
    scope = ctx.scope(name)
    if scope is None:
        return None
    try:
        assignments = list(scope[name.value])
    except Exception:
        return None
    values: List[cst.BaseExpression] = []
    for a in assignments:
        target = getattr(a, "node", None)
        at = ctx.parent(target) if isinstance(target, cst.Name) else None
        assign = ctx.parent(at) if isinstance(at, cst.AssignTarget) else None
        if not isinstance(assign, cst.Assign) or len(assign.targets) != 1 or assign.targets[0].target is not target:
            return None
        values.append(assign.value)
    return values
