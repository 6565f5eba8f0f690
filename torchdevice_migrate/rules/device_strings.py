"""``'cuda'`` device strings, where the syntax proves they are devices.

A CUDA device string (``'cuda'``, ``'cuda:1'``, ``f'cuda:{rank}'``, ``'cuda:%d' % i``) is wrapped in
``runtime_shim.device_string(...)`` (or ``runtime_shim.device_type(...)`` where the position holds a
device *type*) only in these positions:

* a ``device=`` / ``map_location=`` / ``device_map=`` keyword (``device_type=``: a type), in any call;
* a device parameter of a known torch callable (``torch.set_default_device``, ``torch.Generator``,
  ``torch.load``'s ``map_location``, ``torch.autocast``'s ``device_type``) and the first argument of ``.to()``;
* the values (not the keys) of a ``map_location={...}`` dict;
* the default of a parameter, the value of an assignment, or a dict entry whose name says device
  (``device``, ``self.device``, ``*_device``, ``'device'``; ``device_type`` for types);
* ``parser.add_argument('--device', default='cuda')``;
* a branch of a conditional expression whose other branch is ``'cpu'`` (``'cuda' if c else 'cpu'``);
* an operand of ``or`` (either side) or the right operand of ``and`` in any of these places
  (``device = device or 'cuda'``, ``x.to(device or 'cuda')``): the operand is the value there;
* the fallback of ``<x>.get(key, 'cuda')`` / ``.pop`` / ``.setdefault`` and of ``getattr(obj, key, 'cuda')``
  when the key names a device (``kwargs.get('device', 'cuda')``, ``os.environ.get('DEVICE', 'cuda')``);
* ``return 'cuda'`` in a function that also returns ``'cpu'`` or ``'mps'``, and ``x = 'cuda'`` where the same
  scope also assigns ``'cpu'`` or ``'mps'`` to ``x`` (the ``if``/``else`` form of the availability idiom:
  the sibling value proves ``x`` holds a device name).

The idiom ``'cuda' if torch.cuda.is_available() else 'cpu'`` becomes ``runtime_shim.device_string()``.
A string stays a string; integers stay integers except where a torch call takes them as a device
(``x.to(0)``, ``torch.ones(2, device=0)``). Everything else is left alone and listed for review.
"""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from ..findings import FindingStatus
from ..registry import Status, entries, handled_by, is_cuda_namespace, lookup
from .base import (
    RANK_NAME_RE,
    Example,
    NodeVisitor,
    Rule,
    RuleContext,
    availability_idiom,
    device_chooser,
    device_expression,
    device_kind_for_name,
    device_type_expression,
    is_cpu_string,
    is_cuda_device_string,
    is_plain_cuda,
    rewrite_ported,
    shim_args_for,
    string_value,
    target_name,
    walk,
)

# Keyword arguments that hold a device (any callable) and the kind of value they hold.
DEVICE_KEYWORDS = {"device": "string", "map_location": "string", "device_map": "string", "device_type": "type"}

# Positional device parameters of known callables: qualified name -> {position: kind}.
# The device-generic AMP entries of the registry (``torch.autocast``, ``torch.amp.GradScaler`` and their
# module paths) take a device type first.
DEVICE_POSITIONALS = {
    "torch.set_default_device": {0: "string"},
    "torch.Generator": {0: "string"},
    "torch.load": {1: "string"},
    "torch.get_device_module": {0: "type"},
    **{a.name: {0: "type"} for a in entries()
       if a.rule == "amp" and a.status is Status.REWRITTEN and not is_cuda_namespace(a.name)},
}

# Calls that take care of their own device argument (rewritten as a whole elsewhere).
OWNER_CALLS = {"torch.device"}

_ARGPARSE_DEVICE_OPTION = re.compile(r"--?[\w-]*dev(?:ice)?(?:[_-]type)?")

SHIM_FOR_KIND = {"string": "device_string", "type": "device_type"}
# The registry entry this rule ports (its replacement per target: ctx.port(API, ...)).
API = "literal:'cuda'"
HANDLES = handled_by("device_strings")
# An int (or rank) where a torch call takes a device is a CUDA device index: filed under torch.device.
INT_DEVICE_API = "torch.device"


def _call_of_arg(ctx: RuleContext, arg: cst.Arg) -> Optional[cst.Call]:
    call = ctx.parent(arg)
    return call if isinstance(call, cst.Call) else None


def _positional_index(call: cst.Call, arg: cst.Arg) -> Optional[int]:
    if arg.keyword is not None or arg.star:
        return None
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for i, a in enumerate(positional):
        if a is arg:
            return i
    return None


def _is_to_call(call: cst.Call) -> bool:
    return isinstance(call.func, cst.Attribute) and call.func.attr.value == "to"


def call_position_kind(ctx: RuleContext, call: cst.Call, arg: cst.Arg) -> Optional[str]:
    """The device kind of argument ``arg`` of ``call``, or None if it is not proven a device."""
    if ctx.is_shim_ref(call.func):
        return None
    qual = ctx.qualname(call.func)
    if qual in OWNER_CALLS:
        return None
    if arg.keyword is not None:
        key = arg.keyword.value
        if key in DEVICE_KEYWORDS:
            return DEVICE_KEYWORDS[key]
        if key == "default" and isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_argument":
            for a in call.args:
                option = string_value(a.value) if a.keyword is None else None
                if option and _ARGPARSE_DEVICE_OPTION.fullmatch(option):
                    return "type" if "type" in option else "string"
        return None
    index = _positional_index(call, arg)
    if index is None:
        return None
    if _is_to_call(call):
        return "string" if index == 0 else None
    fallback = _lookup_fallback_kind(ctx, call, index)
    if fallback is not None:
        return fallback
    return DEVICE_POSITIONALS.get(qual or "", {}).get(index)


def device_position(ctx: RuleContext, node: cst.CSTNode) -> Optional[str]:
    """Whether ``node`` (an original node) sits where the syntax proves a device; its kind if so."""
    parent = ctx.parent(node)
    if isinstance(parent, cst.Arg) and parent.value is node:
        call = _call_of_arg(ctx, parent)
        return call_position_kind(ctx, call, parent) if call is not None else None
    if isinstance(parent, cst.Param) and parent.default is node:
        return device_kind_for_name(parent.name.value)
    if isinstance(parent, cst.Assign) and parent.value is node:
        kinds = {device_kind_for_name(target_name(t.target)) for t in parent.targets}
        kinds.discard(None)
        if len(kinds) == 1:
            return kinds.pop()
        if _indexed_device_string(node) or _assigned_device_name_elsewhere(ctx, parent):
            return "string"
        return None
    if isinstance(parent, cst.AnnAssign) and parent.value is node:
        kind = device_kind_for_name(target_name(parent.target))
        return kind or ("string" if _indexed_device_string(node) else None)
    if isinstance(parent, cst.Return) and parent.value is node:
        return "string" if _indexed_device_string(node) or _returns_device_name_elsewhere(ctx, parent) else None
    if isinstance(parent, cst.BooleanOperation) and (node is parent.right or isinstance(parent.operator, cst.Or)):
        # ``device or 'cuda'``: the operand is the value of the whole expression.
        return device_position(ctx, parent) or ("string" if _owner_argument(ctx, parent) else None)
    if isinstance(parent, cst.DictElement) and parent.value is node:
        key = string_value(parent.key)
        if key is not None and not is_cuda_device_string(parent.key):
            return device_kind_for_name(key)
        return _map_location_dict(ctx, ctx.parent(parent))
    if isinstance(parent, cst.IfExp) and node in (parent.body, parent.orelse):
        other = parent.orelse if node is parent.body else parent.body
        outer = device_position(ctx, parent)
        if outer is None and _owner_argument(ctx, parent):
            outer = "string"
        if outer is not None:
            return outer
        return "string" if is_cpu_string(other) else None
    return None


# ``<mapping>.get(key, default)`` and friends: the default is the value when the key is missing.
_LOOKUP_METHODS = {"get", "pop", "setdefault"}


def _lookup_fallback_kind(ctx: RuleContext, call: cst.Call, index: int) -> Optional[str]:
    """``kwargs.get('device', 'cuda')`` / ``getattr(args, 'device', 'cuda')``: the kind the key names."""
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if isinstance(call.func, cst.Attribute) and call.func.attr.value in _LOOKUP_METHODS:
        key_index = 0
    elif isinstance(call.func, cst.Name) and call.func.value == "getattr" and ctx.qualname(call.func) in ("builtins.getattr", "getattr"):
        key_index = 1
    else:
        return None
    if index != key_index + 1 or len(positional) != key_index + 2:
        return None
    return device_kind_for_name(string_value(positional[key_index].value))


# Device names whose presence next to ``'cuda'`` proves a variable or a function holds a device name.
_SIBLING_DEVICE_NAMES = {"cpu", "mps"}


def _scope_root(ctx: RuleContext, node: cst.CSTNode) -> Optional[cst.CSTNode]:
    """The innermost function, lambda, class or module around ``node``."""
    p = ctx.parent(node)
    while p is not None and not isinstance(p, (cst.FunctionDef, cst.Lambda, cst.ClassDef, cst.Module)):
        p = ctx.parent(p)
    return p


class _OwnStatements(NodeVisitor):
    """Returns and assignments of one function (or module/class body), not of nested scopes."""

    def __init__(self, root: cst.CSTNode) -> None:
        self.root = root
        self.returns: list = []
        self.assigns: list = []

    def _enter(self, node: cst.CSTNode) -> bool:
        return node is self.root

    visit_FunctionDef = visit_ClassDef = visit_Lambda = _enter  # type: ignore[assignment]

    def visit_Return(self, node: cst.Return) -> None:
        self.returns.append(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self.assigns.append(node)


def _own_statements(ctx: RuleContext, node: cst.CSTNode) -> Optional[_OwnStatements]:
    root = _scope_root(ctx, node)
    if root is None:
        return None
    v = _OwnStatements(root)
    walk(v, root)
    return v


def _is_sibling_device_name(node: Optional[cst.CSTNode]) -> bool:
    return node is not None and string_value(node) in _SIBLING_DEVICE_NAMES


def _returns_device_name_elsewhere(ctx: RuleContext, ret: cst.Return) -> bool:
    """``return 'cuda'`` in a function that also has ``return 'cpu'`` (or ``'mps'``)."""
    if ret.value is None or not is_plain_cuda(ret.value) or not isinstance(_scope_root(ctx, ret), cst.FunctionDef):
        return False
    own = _own_statements(ctx, ret)
    return own is not None and any(_is_sibling_device_name(r.value) for r in own.returns)


def _assigned_device_name_elsewhere(ctx: RuleContext, assign: cst.Assign) -> bool:
    """``x = 'cuda'`` where the same scope also has ``x = 'cpu'`` (or ``'mps'``)."""
    if not is_plain_cuda(assign.value) or len(assign.targets) != 1:
        return False
    target = ctx.code(assign.targets[0].target)
    own = _own_statements(ctx, assign)
    if own is None:
        return False
    return any(len(a.targets) == 1 and ctx.code(a.targets[0].target) == target and _is_sibling_device_name(a.value)
               for a in own.assigns)


def _indexed_device_string(node: cst.CSTNode) -> bool:
    """``'cuda:1'``, ``f'cuda:{rank}'``, ``'cuda:%d' % i``: torch's own device syntax, nothing else."""
    return is_cuda_device_string(node) and not is_plain_cuda(node)


def _map_location_dict(ctx: RuleContext, dict_node: Optional[cst.CSTNode]) -> Optional[str]:
    if not isinstance(dict_node, cst.Dict):
        return None
    arg = ctx.parent(dict_node)
    if isinstance(arg, cst.Arg) and arg.keyword is not None and arg.keyword.value == "map_location":
        return "string"
    if isinstance(arg, cst.Arg) and arg.keyword is None:
        call = _call_of_arg(ctx, arg)
        if call is not None and ctx.qualname(call.func) == "torch.load" and _positional_index(call, arg) == 1:
            return "string"
    return None


def _owner_argument(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """True when ``node`` is an argument of a call that is rewritten as a whole (``torch.device``)."""
    parent = ctx.parent(node)
    if isinstance(parent, cst.Arg):
        call = _call_of_arg(ctx, parent)
        return call is not None and ctx.qualname(call.func) in OWNER_CALLS
    return False


class DeviceStrings(Rule):
    name = "device-strings"
    VALID = (
        "state = {'cuda_rng_state': 1}\n",
        "def f():\n    '''Runs on cuda.'''\n",
        "logger.info('moving model to cuda:0')\n",
        "torch.load(f, map_location='cpu')\n",
        "device = 0\n",
        "model.to(dtype)\n",
        "if self.gpu_id == 0:\n    save()\n",
        "name = s.replace('cuda:', '')\n",
    )
    # Left in place: the syntax does not prove these strings are devices (listed for review).
    REPORTS = (
        ("x = 'cuda'\n", ("TDM301",)),
        ("print('cuda')\n", ("TDM301",)),
        ("backend = 'cuda'\n", ("TDM301",)),
        # No sibling device name: a function returning 'cuda' may name a backend, not a device.
        ("def backend():\n    return 'cuda'\n", ("TDM301",)),
        ("name = opts.get('backend', 'cuda')\n", ("TDM301",)),
        ("def f(ok):\n    if ok:\n        kind = 'cuda'\n    return kind\n", ("TDM301",)),
    )
    INVALID = (
        # A device type of a call the registry lists (the generic autocast): filed under that call.
        Example(
            'import torch\n'
            "with torch.autocast('cuda'), torch.amp.autocast_mode.autocast(device_type='cuda'):\n"
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            "with torch.autocast(runtime_shim.device_type('cuda')), torch.amp.autocast_mode.autocast(device_type=runtime_shim.device_type('cuda')):\n"
            '    pass\n',
            ('TDM101', 'TDM101'),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'with torch.autocast(device.type), torch.amp.autocast_mode.autocast(device_type=device.type):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            "x = torch.ones(2, device='cuda')\n",
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            "x = torch.ones(2, device=runtime_shim.device_string('cuda'))\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'x = torch.ones(2, device=device)\n',
        ),
        Example(
            "def build(device='cuda'):\n"
            '    pass\n',
            'import runtime_shim\n'
            '\n'
            "def build(device=runtime_shim.device_string('cuda')):\n"
            '    pass\n',
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'DEVICE = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'def build(device=DEVICE.type):\n'
                  '    pass\n',
        ),
        Example(
            'import torch\n'
            "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n",
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'device = runtime_shim.device_string()\n',
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'DEVICE = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'device = DEVICE.type\n',
        ),
        Example(
            "y = x.to(f'cuda:{rank}')\n",
            'import runtime_shim\n'
            '\n'
            "y = x.to(runtime_shim.device_string(f'cuda:{rank}'))\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  "y = x.to(f'{device.type}:{rank}')\n",
        ),
        Example(
            "sd = torch.load(p, map_location={'cuda:0': 'cuda:%d' % rank})\n",
            'import runtime_shim\n'
            '\n'
            "sd = torch.load(p, map_location={'cuda:0': runtime_shim.device_string('cuda:%d' % rank)})\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  "sd = torch.load(p, map_location={'cuda:0': f'{device.type}:%d' % rank})\n",
        ),
        Example(
            "parser.add_argument('--device', default='cuda')\n",
            'import runtime_shim\n'
            '\n'
            "parser.add_argument('--device', default=runtime_shim.device_string('cuda'))\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  "parser.add_argument('--device', default=device.type)\n",
        ),
        Example(
            'import torch\n'
            "with torch.autocast(device_type='cuda'):\n"
            '    pass\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            "with torch.autocast(device_type=runtime_shim.device_type('cuda')):\n"
            '    pass\n',
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'with torch.autocast(device_type=device.type):\n'
                  '    pass\n',
        ),
        Example(
            'y = x.to(0)\n',
            'import runtime_shim\n'
            '\n'
            'y = x.to(runtime_shim.device(0))\n',
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'y = x.to(torch.device(device.type, 0))\n',
        ),
        Example(
            'import torch\n'
            'self.model = model.to(self.gpu_id)\n'
            't = torch.ones(2, device=local_rank)\n',
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'self.model = model.to(runtime_shim.device(self.gpu_id))\n'
            't = torch.ones(2, device=runtime_shim.device(local_rank))\n',
            ('TDM101', 'TDM101'),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'self.model = model.to(torch.device(device.type, self.gpu_id))\n'
                  't = torch.ones(2, device=torch.device(device.type, local_rank))\n',
        ),
        # The device chooser, also with an 'mps' arm: one expression.
        Example(
            'import torch\n'
            "device = 'cuda' if torch.cuda.is_available() else 'mps' if torch.backends.mps.is_available() else 'cpu'\n",
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            'device = runtime_shim.device_string()\n',
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'DEVICE = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'device = DEVICE.type\n',
        ),
        Example(
            'import torch\n'
            "x = torch.ones(2, device='cuda:1')\n"
            "y = x.to('cuda:%d' % rank)\n",
            'import torch\n'
            'import runtime_shim\n'
            '\n'
            "x = torch.ones(2, device=runtime_shim.device_string('cuda:1'))\n"
            "y = x.to(runtime_shim.device_string('cuda:%d' % rank))\n",
            ('TDM101', 'TDM101'),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  "x = torch.ones(2, device=f'{device.type}:1')\n"
                  "y = x.to(f'{device.type}:%d' % rank)\n",
        ),
        Example(
            'def device_for(rank):\n'
            "    return f'cuda:{rank}'\n",
            'import runtime_shim\n'
            '\n'
            'def device_for(rank):\n'
            "    return runtime_shim.device_string(f'cuda:{rank}')\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'def device_for(rank):\n'
                  "    return f'{device.type}:{rank}'\n",
        ),
        Example(
            "loc = 'cuda:%d' % rank\n",
            'import runtime_shim\n'
            '\n'
            "loc = runtime_shim.device_string('cuda:%d' % rank)\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  "loc = f'{device.type}:%d' % rank\n",
        ),
        Example(
            'def load(device=None):\n'
            "    device = device or 'cuda'\n"
            "    return m.to(device or 'cuda')\n",
            'import runtime_shim\n'
            '\n'
            'def load(device=None):\n'
            "    device = device or runtime_shim.device_string('cuda')\n"
            "    return m.to(device or runtime_shim.device_string('cuda'))\n",
            ('TDM101', 'TDM101'),
            torch='import torch\n'
                  '\n'
                  'DEVICE = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'def load(device=None):\n'
                  '    device = device or DEVICE.type\n'
                  '    return m.to(device or DEVICE.type)\n',
        ),
        Example(
            "dev = kwargs.get('device', 'cuda')\n"
            "d = getattr(args, 'device', 'cuda')\n",
            'import runtime_shim\n'
            '\n'
            "dev = kwargs.get('device', runtime_shim.device_string('cuda'))\n"
            "d = getattr(args, 'device', runtime_shim.device_string('cuda'))\n",
            ('TDM101', 'TDM101'),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  "dev = kwargs.get('device', device.type)\n"
                  "d = getattr(args, 'device', device.type)\n",
        ),
        Example(
            'def pick(ok):\n'
            '    if ok:\n'
            "        return 'cuda'\n"
            "    return 'cpu'\n",
            'import runtime_shim\n'
            '\n'
            'def pick(ok):\n'
            '    if ok:\n'
            "        return runtime_shim.device_string('cuda')\n"
            "    return 'cpu'\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'def pick(ok):\n'
                  '    if ok:\n'
                  '        return device.type\n'
                  "    return 'cpu'\n",
        ),
        Example(
            'if ok:\n'
            "    accel = 'cuda'\n"
            'else:\n'
            "    accel = 'mps'\n",
            'import runtime_shim\n'
            '\n'
            'if ok:\n'
            "    accel = runtime_shim.device_string('cuda')\n"
            'else:\n'
            "    accel = 'mps'\n",
            ('TDM101',),
            torch='import torch\n'
                  '\n'
                  'device = torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")\n'
                  '\n'
                  'if ok:\n'
                  '    accel = device.type\n'
                  'else:\n'
                  "    accel = 'mps'\n",
        ),
    )

    def _wrap(self, ctx: RuleContext, original: cst.BaseExpression, updated: cst.BaseExpression,
              kind: str) -> Optional[cst.CSTNode]:
        new: Optional[cst.BaseExpression]
        if ctx.target == "torch":
            # A str stays a str: 'cuda' -> device.type, 'cuda:N' -> f"{device.type}:N" (variant "string").
            spelling = ctx.port(API, "string")
            if kind == "string" and is_plain_cuda(original) and _torch_device_keyword(ctx, original):
                spelling = ctx.port(API)  # torch.ones(2, device='cuda') -> device=device: a torch call takes the device
                new = device_expression(ctx, original)
            else:
                new = _torch_device_string(ctx, original, updated) if kind == "string" else (
                    device_type_expression(ctx, original) if is_plain_cuda(original) else None)
            if new is None:
                return None  # no exact spelling here: listed for review with the strings no rule ported
            return rewrite_ported(ctx, original, new, _api_of(ctx, original, kind), "TDM101", spelling)
        new = ctx.shim_call(SHIM_FOR_KIND[kind], updated)
        return ctx.rewrite(original, new, _api_of(ctx, original, kind), "TDM101")

    @staticmethod
    def _device(ctx: RuleContext, original: cst.CSTNode, index: cst.BaseExpression) -> cst.BaseExpression:
        """A device index (or rank) where a torch call takes a device: ``runtime_shim.device(i)``, or
        ``torch.device({device_type}, i)`` under ``--target torch``."""
        if ctx.target == "torch":
            ctx.port("torch.device")
            return cst.Call(ctx.torch_ref("torch.device"), [cst.Arg(device_type_expression(ctx, original)), cst.Arg(index)])
        return ctx.shim_call("device", index)

    def _leave_string_like(self, ctx: RuleContext, original, updated):
        if API not in HANDLES or not is_cuda_device_string(original):
            return None
        kind = device_position(ctx, original)
        if kind is None:
            return None
        return self._wrap(ctx, original, updated, kind)

    leave_SimpleString = _leave_string_like
    leave_ConcatenatedString = _leave_string_like
    leave_FormattedString = _leave_string_like
    leave_BinaryOperation = _leave_string_like

    def leave_Call(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        if is_cuda_device_string(original):  # 'cuda:{}'.format(i)
            return self._leave_string_like(ctx, original, updated)
        if _is_get_device(original):
            return self._get_device(ctx, original, updated)
        if _device_of_get_device(ctx, original):  # torch.device('cuda', x.get_device()) -> x.device
            receiver = updated.args[1].value.func.value  # type: ignore[attr-defined]
            new = cst.Attribute(receiver, cst.Name("device"), lpar=updated.lpar, rpar=updated.rpar)
            return ctx.rewrite(original, new, "torch.Tensor.get_device", "TDM101",
                               "The CUDA device of a tensor, built from its index: the tensor's own device.")
        # torch.cuda.current_device() where a torch call takes a device (x.to(...), device=): the chosen
        # device itself. Exact in use: a device without an index is the current one when the call runs.
        api = lookup(ctx.qualname(original.func) or "") if not original.args else None
        if api is not None and api.shim_name == "current_device" and self._int_device_position(ctx, original):
            ctx.port(api.name)
            chosen: cst.BaseExpression = device_expression(ctx, original) if ctx.target == "torch" else ctx.shim_call("device")
            return ctx.rewrite(original, chosen.with_changes(lpar=updated.lpar, rpar=updated.rpar), api.name, "TDM101",
                               "The current CUDA device where a torch call takes a device: the chosen device.")
        return None

    def _get_device(self, ctx: RuleContext, original: cst.Call, updated: cst.Call):
        """``x.get_device()`` (the CUDA index, -1 for a CPU tensor) used as a device -> ``x.device``."""
        parent = ctx.parent(original)
        if isinstance(parent, cst.Arg) and _device_of_get_device(ctx, ctx.parent(parent)):
            return None  # the enclosing torch.device('cuda', ...) becomes x.device
        if self._int_device_position(ctx, original) or device_position(ctx, original) == "string" or (
                isinstance(parent, cst.Arg) and _is_call_of(ctx, ctx.parent(parent), "torch.device")
                and len(ctx.parent(parent).args) == 1):  # type: ignore[union-attr]
            new = cst.Attribute(updated.func.value, cst.Name("device"), lpar=updated.lpar, rpar=updated.rpar)  # type: ignore[attr-defined]
            return ctx.rewrite(original, new, "torch.Tensor.get_device", "TDM101",
                               "x.get_device() (-1 for a CPU tensor) used as a device: the tensor's own device.")
        ctx.report(original, "torch.Tensor.get_device", FindingStatus.REVIEW, "TDM305")
        return None

    def leave_Integer(self, ctx: RuleContext, original: cst.Integer, updated: cst.Integer):
        if self._int_device_position(ctx, original):
            return ctx.rewrite(original, self._device(ctx, original, updated), INT_DEVICE_API, "TDM101")
        return None

    def _leave_rank_name(self, ctx: RuleContext, original, updated):
        """``x.to(self.gpu_id)``: a rank used as a device index. The variable stays an int."""
        if target_name(original) is None or not RANK_NAME_RE.fullmatch(target_name(original) or ""):
            return None
        parent = ctx.parent(original)
        if isinstance(parent, cst.Attribute) or not self._int_device_position(ctx, original):
            return None
        return ctx.rewrite(original, self._device(ctx, original, updated), INT_DEVICE_API, "TDM101",
                           "A rank or GPU index used as a device now names the chosen device; the variable stays an int.")

    leave_Name = _leave_rank_name
    leave_Attribute = _leave_rank_name

    def _int_device_position(self, ctx: RuleContext, node: cst.CSTNode) -> bool:
        """An int is a device only as ``.to(0)`` or ``device=0`` of a torch call."""
        parent = ctx.parent(node)
        if not (isinstance(parent, cst.Arg) and parent.value is node):
            return False
        call = _call_of_arg(ctx, parent)
        if call is None or ctx.is_shim_ref(call.func):
            return False
        if _is_to_call(call):
            return _positional_index(call, parent) == 0 or (parent.keyword is not None and parent.keyword.value == "device")
        qual = ctx.qualname(call.func) or ""
        return (qual.startswith("torch.") and qual not in OWNER_CALLS and not qual.startswith("torch.cuda.")
                and parent.keyword is not None and parent.keyword.value == "device")

    def leave_IfExp(self, ctx: RuleContext, original: cst.IfExp, updated: cst.IfExp):
        """The device chooser (``'cuda' if torch.cuda.is_available() else 'cpu'``, also with ``'mps'``/``'xpu'``
        arms) becomes one expression: the chosen device's name (a str, as the original)."""
        cuda_branch = availability_idiom(ctx, original)
        plain = device_chooser(ctx, original) or (cuda_branch is not None and is_plain_cuda(cuda_branch))
        if cuda_branch is None and not plain:
            return None
        kind = device_position(ctx, original) or "string"
        message = "The device chooser (cuda if available, else cpu) is now one expression: the chosen device's name."
        if ctx.target == "torch":
            if not plain:
                return None  # 'cuda:N' if ... else 'cpu': its string is ported where it stands; the test stays
            new: cst.BaseExpression = device_type_expression(ctx, original)
            return rewrite_ported(ctx, original, new.with_changes(lpar=updated.lpar, rpar=updated.rpar),
                                  "torch.cuda.is_available", "TDM101", ctx.port(API, "string"), message)
        new = ctx.shim_call(SHIM_FOR_KIND[kind], *([] if plain else shim_args_for(cuda_branch)))  # type: ignore[arg-type]
        return ctx.rewrite(original, new.with_changes(lpar=updated.lpar, rpar=updated.rpar), "torch.cuda.is_available", "TDM101",
                           message)


def _is_call_of(ctx: RuleContext, node: Optional[cst.CSTNode], name: str) -> bool:
    return isinstance(node, cst.Call) and ctx.qualname(node.func) == name


def _api_of(ctx: RuleContext, node: cst.CSTNode, kind: str) -> str:
    """The registry entry a ported string is filed under: the call whose device type it is when the
    registry lists that call as rewritten for it (``torch.autocast('cuda')``), else ``literal:'cuda'``."""
    arg = ctx.parent(node)
    call = _call_of_arg(ctx, arg) if kind == "type" and isinstance(arg, cst.Arg) else None
    qual = ctx.qualname(call.func) if call is not None else None
    api = lookup(qual) if qual else None
    return api.name if api is not None and api.status is Status.REWRITTEN else API


def _torch_device_keyword(ctx: RuleContext, node: cst.CSTNode) -> bool:
    """A place that takes a ``torch.device`` as it takes the str: the device of ``x.to(...)`` (tensors,
    modules, and the objects that forward to them), and ``device=`` / ``map_location=`` / a device
    position (``DEVICE_POSITIONALS``) of a torch function (``torch.ones(2, device='cuda')``). A project
    function might compare the str, so only ``.to`` and torch's own callables."""
    arg = ctx.parent(node)
    if not (isinstance(arg, cst.Arg) and arg.value is node):
        return False
    call = _call_of_arg(ctx, arg)
    if call is None:
        return False
    keyword = arg.keyword.value if arg.keyword is not None else None
    if _is_to_call(call):
        return keyword == "device" or (keyword is None and _positional_index(call, arg) == 0)
    qual = ctx.qualname(call.func)
    if qual is None or not qual.startswith("torch.") or qual.startswith("torch.cuda."):
        return False
    if keyword is not None:
        return keyword in ("device", "map_location")
    index = _positional_index(call, arg)
    return index is not None and DEVICE_POSITIONALS.get(qual, {}).get(index) == "string"


def _fstring_with_type(ctx: RuleContext, at: cst.CSTNode, literal: cst.SimpleString) -> Optional[cst.BaseExpression]:
    """``'cuda:1'`` -> ``f'{device.type}:1'`` (the literal's own quote and raw prefix; braces of the rest
    escaped), ``'cuda'`` -> ``device.type``; None for a literal that cannot be rewritten so."""
    value = string_value(literal)
    if value is None or not value.startswith("cuda"):
        return None
    device_type = device_type_expression(ctx, at)
    rest = value[len("cuda"):]
    if not rest:
        return device_type
    prefix = "".join(c for c in literal.prefix.lower() if c == "r")
    quote = literal.quote
    if quote in rest or "\\" in rest or "\n" in rest:
        return None
    return cst.FormattedString(
        parts=[cst.FormattedStringExpression(device_type), cst.FormattedStringText(rest.replace("{", "{{").replace("}", "}}"))],
        start=f"{prefix}f{quote}", end=quote)


def _torch_device_string(ctx: RuleContext, original: cst.BaseExpression, updated: cst.BaseExpression) -> Optional[cst.BaseExpression]:
    """A CUDA device string as a str naming the chosen device type (``--target torch``): ``'cuda'`` ->
    ``device.type``, ``'cuda:1'`` -> ``f'{device.type}:1'``, ``f'cuda:{i}'`` -> ``f'{device.type}:{i}'``,
    ``'cuda:%d' % i`` / ``'cuda:' + s`` / ``'cuda:{}'.format(i)``: the same with that f-string as the literal.
    Exactly the original string on CUDA."""
    if isinstance(updated, cst.SimpleString):
        return _fstring_with_type(ctx, original, updated)
    if isinstance(updated, cst.FormattedString):
        parts = list(updated.parts)
        if not parts or not isinstance(parts[0], cst.FormattedStringText) or not parts[0].value.startswith("cuda"):
            return None
        rest = parts[0].value[len("cuda"):]
        head: list = [cst.FormattedStringExpression(device_type_expression(ctx, original))]
        if rest:
            head.append(cst.FormattedStringText(rest))
        return updated.with_changes(parts=head + parts[1:])
    if isinstance(updated, cst.BinaryOperation) and isinstance(updated.left, cst.SimpleString):
        left = _fstring_with_type(ctx, original, updated.left)
        return updated.with_changes(left=left) if left is not None else None
    if (isinstance(updated, cst.Call) and isinstance(updated.func, cst.Attribute)
            and isinstance(updated.func.value, cst.SimpleString)):
        receiver = _fstring_with_type(ctx, original, updated.func.value)
        return updated.with_changes(func=updated.func.with_changes(value=receiver)) if receiver is not None else None
    return None


# Tensor methods this rule ports, by attribute name (``torch.Tensor.get_device`` -> ``get_device``).
_TENSOR_METHODS = frozenset(n[len("torch.Tensor."):] for n in HANDLES if n.startswith("torch.Tensor."))


def _is_get_device(node: cst.CSTNode) -> bool:
    return (isinstance(node, cst.Call) and not node.args and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "get_device" and "get_device" in _TENSOR_METHODS)


def _device_of_get_device(ctx: RuleContext, node: Optional[cst.CSTNode]) -> bool:
    """``torch.device('cuda', x.get_device())``."""
    if not (isinstance(node, cst.Call) and len(node.args) == 2 and all(a.keyword is None and not a.star for a in node.args)):
        return False
    return (ctx.qualname(node.func) == "torch.device" and string_value(node.args[0].value) == "cuda"
            and _is_get_device(node.args[1].value))
