"""Render ``docs/api-coverage.md`` and ``docs/reason-codes.md`` from the registry (with the target
columns of ``targets.py``), ``docs/targets.md`` from ``targets.py``, and ``docs/rules.md`` from the
rules' own docstrings and VALID/INVALID examples.

Run ``python -m torchdevice_migrate.docs_gen`` after changing ``registry.py``;
``tests/test_registry.py`` fails when the committed files differ from what this writes.
``python -m torchdevice_migrate.docs_gen --check`` exits 1 (writing nothing) when they are stale.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List

from . import targets
from .registry import FAMILIES, REASONS, Api, Status, by_family, entries

REPO = Path(__file__).resolve().parent.parent
API_COVERAGE = Path("docs/api-coverage.md")
REASON_CODES = Path("docs/reason-codes.md")
RULES_DOC = Path("docs/rules.md")
TARGETS_DOC = Path("docs/targets.md")
REGENERATE = "python -m torchdevice_migrate.docs_gen"

_HEADER = "<!-- Generated from torchdevice_migrate/registry.py by `{cmd}`. Do not edit by hand. -->\n"


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _name(api: Api) -> str:
    return f"`{api.name}`"


def _code_link(code: str) -> str:
    return f"[{code}](reason-codes.md#{code.lower()})" if code else ""


def _what(api: Api) -> str:
    if api.status is Status.REWRITTEN:
        text = f"`{api.replacement}`" if api.replacement else ""
        via = "rename" if api.rename else f"rule `{api.rule}`"
        out = f"{text} ({via})" if text else f"({via})"
        return out + (f"; {api.reason}" if api.reason else "")
    return api.reason


def _torch_cell(api: Api) -> str:
    """The torch-target cell of a REWRITTEN entry: spelling, minimum torch, CPU safety."""
    if api.status is not Status.REWRITTEN:
        return ""
    try:
        sp = targets.replacement_for(api.name, "torch")
    except KeyError:  # a new entry: tests/test_targets.py fails until targets.py has its cell
        return "not in targets.py yet"
    if sp.kept:
        return "left in place and reported (no exact torch spelling)"
    cpu = {"safe": "CPU-safe", "guarded": "CPU-unsafe, guarded as a statement", "unsafe": "CPU-unsafe, reported"}[sp.cpu]
    return f"`{sp.text}` (torch >= {sp.since}; {cpu})"


def render_api_coverage() -> str:
    apis = list(entries())
    counts = Counter(a.status for a in apis)
    lines: List[str] = [_HEADER.format(cmd=REGENERATE), "# API coverage", ""]
    lines.append("Every CUDA API torchdevice-migrate classifies, one row each, from "
                 "`torchdevice_migrate/registry.py`. **rewritten**: ported automatically (to what, and by which "
                 "rule); **harmless**: left as is because it works on every backend (why); **unsupported**: left "
                 "in place and reported with a reason code and a hint. Every public name of `torch.cuda` (with its "
                 "submodules), `torch.cuda.amp`, `torch.cuda.nvtx`, `torch.backends.cuda` and `torch.backends.cudnn` "
                 "is listed; `tests/test_registry.py` checks that against the installed torch. A rewritten "
                 "entry has a replacement per target ([targets.md](targets.md)): the **shim** target (the default) "
                 "and the **torch** target (`--target torch`), with the torch version it needs and whether it runs "
                 "on a CPU-only machine.")
    lines.append("")
    lines.append("| status | entries |")
    lines.append("|---|---|")
    for status in Status:
        lines.append(f"| {status.value} | {counts.get(status, 0)} |")
    lines.append(f"| **total** | **{len(apis)}** |")
    lines.append("")
    groups = by_family()
    lines.append("Families: " + ", ".join(f"[{FAMILIES.get(f, f)}](#{_slug(FAMILIES.get(f, f))})" for f in groups) + ".")
    lines.append("")
    for family, group in groups.items():
        title = FAMILIES.get(family, family)
        fc = Counter(a.status for a in group)
        summary = ", ".join(f"{fc[s]} {s.value}" for s in Status if fc.get(s))
        lines.append(f"## {title}")
        lines.append("")
        lines.append(f"{summary}.")
        lines.append("")
        lines.append("| API | status | replacement (shim target) or reason | torch target | hint | code | since |")
        lines.append("|---|---|---|---|---|---|---|")
        for api in group:
            lines.append("| " + " | ".join([
                _name(api), api.status.value, _cell(_what(api)), _cell(_torch_cell(api)), _cell(api.hint),
                _code_link(api.code), api.since,
            ]) + " |")
        lines.append("")
    return "\n".join(lines)


def render_reason_codes() -> str:
    by_code: Dict[str, List[Api]] = defaultdict(list)
    for api in entries():
        if api.code:
            by_code[api.code].append(api)
    lines: List[str] = [_HEADER.format(cmd=REGENERATE), "# Reason codes", ""]
    lines.append("Every finding carries a stable code. **TDM1xx**: the site was rewritten; **TDM2xx**: unsupported, "
                 "left in place and reported; **TDM3xx**: left for review. Silence one line with "
                 "`# torchdevice: ignore[TDMnnn]`. Codes are never renumbered or reused.")
    lines.append("")
    lines.append("| code | title |")
    lines.append("|---|---|")
    for reason in REASONS.values():
        lines.append(f"| [{reason.code}](#{reason.code.lower()}) | {_cell(reason.title)} |")
    lines.append("")
    for reason in REASONS.values():
        lines.append(f'<a id="{reason.code.lower()}"></a>')
        lines.append("")
        lines.append(f"## {reason.code}: {reason.title}")
        lines.append("")
        lines.append(reason.description)
        lines.append("")
        if reason.hint:
            lines.append(f"**Hint:** {reason.hint}")
            lines.append("")
        apis = by_code.get(reason.code, [])
        if apis:
            lines.append(f"APIs with this code ({len(apis)}):")
            lines.append("")
            for api in apis:
                own = f": {api.reason}" if api.status is Status.UNSUPPORTED and api.reason and api.reason != reason.description else ""
                lines.append(f"- `{api.name}` ({api.status.value}){own}")
            lines.append("")
        else:
            lines.append("Reported by the rules for source patterns rather than for a registry entry.")
            lines.append("")
    return "\n".join(lines)


def _slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    out = []
    for ch in title.lower():
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def render_rules() -> str:
    import inspect

    from .rules import ALL_RULES
    from .rules.base import Example

    lines: List[str] = [_HEADER.format(cmd=REGENERATE).replace("registry.py", "rules/"), "# Rules", ""]
    lines.append("Each rule family is one module in `torchdevice_migrate/rules/`, run in this order in one pass. "
                 "Its examples are its tests (`tests/test_rule_examples.py`): **ported** pairs show the input and "
                 "exactly what the tool writes; **left alone** examples must come out byte-identical.")
    lines.append("")
    for rule in ALL_RULES:
        module = inspect.getmodule(rule)
        lines.append(f"## `{rule.name}`")
        lines.append("")
        lines.append(f"`{module.__name__}.{rule.__name__}`" if module else f"`{rule.__name__}`")
        lines.append("")
        doc = inspect.cleandoc(module.__doc__ or "") if module else ""
        if doc:
            lines.extend([doc, ""])
        for item in rule.INVALID:
            ex = Example.of(item)
            title = f"Ported ({', '.join(ex.codes)}):" if ex.codes else "Ported:"
            lines.extend([title, "", "```python", ex.before.rstrip("\n"), "```", "", "```python",
                          ex.after.rstrip("\n"), "```", ""])
            if ex.torch is not None:
                lines.extend(["With `--target torch`:", "", "```python", ex.torch.rstrip("\n"), "```", ""])
        for code, codes in getattr(rule, "REPORTS", ()):
            lines.extend([f"Reported ({', '.join(codes)}), left as is:", "", "```python", code.rstrip("\n"), "```", ""])
        if rule.VALID:
            lines.extend(["Left alone:", "", "```python"])
            for i, code in enumerate(rule.VALID):
                if i:
                    lines.append("# ---")
                lines.append(code.rstrip("\n"))
            lines.extend(["```", ""])
    return "\n".join(lines)


def render_targets() -> str:
    lines: List[str] = [_HEADER.format(cmd=REGENERATE).replace("registry.py", "targets.py"), "# Targets", ""]
    lines.append(inspect_doc(_TARGETS_INTRO.format(device=targets.DEVICE_VALUE, device_since=targets.DEVICE_SINCE,
                                                   guard=targets.GUARD, minimum=targets.minimum_torch())))
    lines.append("")
    lines.append("## The torch column")
    lines.append("")
    lines.append("One row per spelling (registry aliases of the same API share a row). **CPU**: *safe* runs on a "
                 "CPU-only torch; *guarded*: raises there, so a call used as a statement is put under the guard and "
                 "a call used as a value is reported as CPU-unsafe; *unsafe*: raises there and is reported. "
                 "`tests/test_targets.py` calls each spelling on the installed CPU torch to check this column.")
    lines.append("")
    lines.append("| torch spelling | since | CPU | registry entries | note |")
    lines.append("|---|---|---|---|---|")
    rows: Dict[str, List[str]] = defaultdict(list)
    cells: Dict[str, targets.Spelling] = {}
    for api, _shim, sp in targets.table(strict=False):
        key = sp.text or f"(left in place: {api.name.rsplit('.', 1)[-1]})"
        rows[key].append(api.name)
        cells[key] = sp
    for key in sorted(rows, key=lambda k: (cells[k].kept, k)):
        sp = cells[key]
        names = rows[key]
        shown = ", ".join(f"`{n}`" for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        text = f"`{sp.text}`" if sp.text else "left in place and reported"
        lines.append("| " + " | ".join([_cell(text), sp.since, sp.cpu, _cell(shown), _cell(sp.note)]) + " |")
    lines.append("")
    lines.append("## Context variants")
    lines.append("")
    lines.append("Where a rule recognises a context, it asks `replacement_for(api, target, variant)`; the torch "
                 "column may spell that context differently.")
    lines.append("")
    lines.append("| registry entry | variant | torch spelling | since | CPU | note |")
    lines.append("|---|---|---|---|---|---|")
    for (name, variant), sp in sorted(targets._VARIANTS.items()):
        text = f"`{sp.text}`" if sp.text else "left in place and reported"
        lines.append("| " + " | ".join([f"`{name}`", variant, _cell(text), sp.since, sp.cpu, _cell(sp.note)]) + " |")
    lines.append("")
    lines.append("## Where each minimum version comes from")
    lines.append("")
    lines.append("| torch | spellings and source |")
    lines.append("|---|---|")
    for version, source in targets.SOURCES.items():
        lines.append(f"| {version} | {_cell(source)} |")
    lines.append("")
    return "\n".join(lines)


def inspect_doc(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


_TARGETS_INTRO = """
    torchdevice-migrate writes each port in one of two targets. A target is a column of the registry, not
    a second set of rules: every rewritten entry of [api-coverage.md](api-coverage.md) has a cell for
    each (`torchdevice_migrate/targets.py`, `replacement_for(api_name, target)`).

    | | `shim` (default) | `torch` (`--target torch`, or `target = "torch"` in `[tool.torchdevice-migrate]`) |
    |---|---|---|
    | for | running the port anywhere: CUDA, XPU, MPS, and CPU-only machines | upstream pull requests and accelerator machines (CUDA, XPU, MPS; NPU/HPU through `torch.accelerator`) |
    | needs | torch and the small runtime shim (installed or vendored with `--vendor`) | torch >= {minimum} alone (each spelling's own minimum is listed below) |
    | on CUDA | exactly what the original did | exactly what the original did |
    | on a CPU-only machine | the same work as the original where it ran; the work on the CPU where it crashed | some calls raise (`synchronize`, timing events, memory figures, the current stream, RNG through `torch.get_device_module()`): a statement gets the guard `{guard}`, a value is listed as CPU-unsafe in the report |

    ## The device value

    Where the torch target needs the device, it writes one module-level value, as experts do, and reuses it:

    ```python
    device = {device}
    ```

    `current_accelerator()` alone answers the accelerator torch was *compiled* with (its docstring: "the
    device of the accelerator available at compilation time"), so on a CUDA build of torch running on a
    machine without a GPU it answers `cuda` and the port would crash where the original ran on the CPU.
    `check_available=True` (torch >= {device_since}) answers None there, and the port uses the CPU.
    `targets.device_value(ctx, node)` gives a rule this value: it reuses a module-level variable the file
    already binds to `torch.device("cuda" if torch.cuda.is_available() else "cpu")` (or to the value
    above) when that name reaches the site unshadowed and is bound before the site runs; otherwise it
    schedules one binding after the imports, under the first of `device`, `DEVICE`, `_device` that the
    file uses nowhere, and `transform.py` inserts it. `{{device}}` in the table is that value and
    `{{device_type}}` is its `.type`.
"""


def outputs() -> Dict[Path, str]:
    return {API_COVERAGE: render_api_coverage(), REASON_CODES: render_reason_codes(), RULES_DOC: render_rules(),
            TARGETS_DOC: render_targets()}


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m torchdevice_migrate.docs_gen", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="repository root (default: this checkout)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for rel, text in outputs().items():
        path = args.root / rel
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            print(f"wrote {rel}", file=sys.stderr)
    if args.check and stale:
        print("out of date: " + ", ".join(map(str, stale)) + f"; run `{REGENERATE}`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
