"""How readable are the ports? Figures for issue 11 ("Must show"), per e2e project and in total.

Ports each project of ``fixtures/projects`` with the tool found in a checkout (its command line, run
as ``PYTHONPATH=CHECKOUT python -m torchdevice_migrate``) and prints, per target the checkout supports:

* ``sites``: ported sites (the report's ``rewritten`` count);
* ``shim refs``: references to the runtime shim the port added (``runtime_shim.`` and its aliases);
* ``refs/site``: shim references per ported site;
* ``longest``: the longest line the port changed or added (characters);
* ``>88``/``>LL``: changed lines longer than 88 (the default line length) or than ``--line-length``;
* ``changed``: lines the port changed or added.

Each project is copied into a temporary folder of its own (with a ``.git`` marker, so no configuration
above it applies: the line length is 88 unless ``--line-length`` says otherwise, which is written as
the copy's ``[tool.ruff] line-length``).

Usage::

    python benchmarks/diff_readability.py                      # the working tree, both targets
    git worktree add /tmp/tdm_before 03baea6
    python benchmarks/diff_readability.py --checkout /tmp/tdm_before   # "before" (shim only)
    python benchmarks/diff_readability.py --json                 # machine-readable
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parent.parent
SHIM_REF = re.compile(r"\b_?runtime_shim(?:_\d+)?\.")


def _cli(checkout: Path, args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONIOENCODING="utf-8")
    env.pop("TORCHDEVICE_DEVICE", None)
    return subprocess.run([sys.executable, "-m", "torchdevice_migrate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def supports_target(checkout: Path) -> bool:
    return "--target" in _cli(checkout, ["--help"], checkout).stdout


def changed_lines(original: str, new: str) -> List[str]:
    """The lines of ``new`` that are not lines of ``original`` at their place (a line diff)."""
    a, b = original.splitlines(), new.splitlines()
    out: List[str] = []
    for tag, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "insert"):
            out.extend(b[j1:j2])
    return out


def measure(checkout: Path, project: Path, target: str, line_length: int, work: Path) -> Dict[str, float]:
    src = work / "src" / project.name
    out = work / f"out_{target}" / project.name
    if not src.exists():
        shutil.copytree(project, src)
        (src / ".git").mkdir()  # the project's root: nothing above it is configuration
        if line_length != 88:
            (src / "ruff.toml").write_text(f"line-length = {line_length}\n")
    target_args = ["--target", target] if target != "shim" else []
    ported = _cli(checkout, [str(src), "--out", str(out), "-q", *target_args], work)
    if ported.returncode not in (0, 1):
        raise SystemExit(f"{project.name} ({target}): the port failed: {ported.stderr}")
    report = _cli(checkout, [str(src), "--report", "--format", "json", *target_args], work)
    summary = json.loads(report.stdout)["summary"]
    refs = 0
    changed: List[str] = []
    for new_path in sorted(out.rglob("*.py")):
        rel = new_path.relative_to(out)
        original = (src / rel).read_text(encoding="utf-8")
        new = new_path.read_text(encoding="utf-8")
        if new == original:
            continue
        refs += len(SHIM_REF.findall(new)) - len(SHIM_REF.findall(original))
        changed += changed_lines(original, new)
    sites = summary["rewritten"]
    return {
        "sites": sites,
        "shim_refs": refs,
        "refs_per_site": round(refs / sites, 2) if sites else 0.0,
        "longest": max((len(line) for line in changed), default=0),
        "over_88": sum(len(line) > 88 for line in changed),
        f"over_{line_length}": sum(len(line) > line_length for line in changed),
        "changed": len(changed),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", type=Path, default=REPO, help="the tool's checkout (default: this working tree)")
    parser.add_argument("--projects", type=Path, default=REPO / "fixtures" / "projects")
    parser.add_argument("--targets", default="shim,torch", help="comma-separated; unsupported ones are skipped")
    parser.add_argument("--line-length", type=int, default=88)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    targets = [t for t in args.targets.split(",") if t == "shim" or supports_target(checkout)]
    projects = sorted(p for p in args.projects.iterdir() if p.is_dir())
    results: Dict[str, Dict[str, Dict[str, float]]] = {t: {} for t in targets}
    with tempfile.TemporaryDirectory(prefix="tdm_readability_") as tmp:
        for target in targets:
            for project in projects:
                results[target][project.name] = measure(checkout, project, target, args.line_length, Path(tmp))
    for rows in results.values():
        total = {k: sum(r[k] for r in rows.values()) for k in ("sites", "shim_refs", "over_88", "changed")}
        total["longest"] = max((r["longest"] for r in rows.values()), default=0)
        total["refs_per_site"] = round(total["shim_refs"] / total["sites"], 2) if total["sites"] else 0.0
        total[f"over_{args.line_length}"] = sum(r[f"over_{args.line_length}"] for r in rows.values())
        rows["TOTAL"] = total
    if args.json:
        print(json.dumps({"checkout": str(checkout), "line_length": args.line_length, "targets": results}, indent=2))
        return 0
    ll = args.line_length
    cols = ["sites", "shim_refs", "refs_per_site", "longest", "over_88"] + ([f"over_{ll}"] if ll != 88 else []) + ["changed"]
    print(f"checkout: {checkout}")
    for target, rows in results.items():
        print(f"\ntarget {target}")
        print(f"{'project':<18}" + "".join(f"{c:>14}" for c in cols))
        for name, row in rows.items():
            print(f"{name:<18}" + "".join(f"{row[c]:>14}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
