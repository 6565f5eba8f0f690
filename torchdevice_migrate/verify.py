"""``--out DEST --verify COMMAND``: a one-shot port that is checked by running something in it.

COMMAND is run by the shell with DEST as the working folder, after the port is written. Its exit
code, duration and the last lines of its output (standard output and error together) go into
``DEST/torchdevice-migrate-report.json`` and ``DEST/torchdevice-migrate-report.md`` together
with what the port changed (files, findings by status and by reason code). With
``--verify-original`` the same command is also run on a fresh copy of the original tree (in a
temporary folder, so the original is never written to) and both outcomes are recorded.

The port must find ``runtime_shim``. With ``--vendor`` it is inside DEST. Otherwise COMMAND runs
with ``PYTHONPATH`` extended by a temporary folder that holds only a link to the installed
``runtime_shim`` package (not the whole site-packages or source checkout it lives in, which
would put unrelated packages on the path), so a command that uses another Python (the
project's own virtual environment) still imports the shim.

The CLI exits with :data:`EXIT_VERIFY_FAILED` (3) when COMMAND fails on the port, whatever it did
on the original (an original that fails without CUDA is the usual reason to port).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from . import __version__
from .findings import FileState, FindingStatus

EXIT_VERIFY_FAILED = 3
REPORT_JSON = "torchdevice-migrate-report.json"
REPORT_MD = "torchdevice-migrate-report.md"
TAIL_LINES = 50


class VerifyUsageError(ValueError):
    """``--verify`` options that cannot be used together; the message says why."""


def check_usage(verify: Optional[str], verify_original: bool, out: Optional[Path],
                write: bool = True) -> None:
    if verify_original and verify is None:
        raise VerifyUsageError("--verify-original goes with --verify COMMAND")
    if verify is None:
        return
    if not verify.strip():
        raise VerifyUsageError("--verify: the command is empty")
    if out is None:
        raise VerifyUsageError("--verify goes with --out DEST (the command runs in the ported copy)")
    if not write:
        raise VerifyUsageError("--verify cannot be combined with --diff, --check or --report")


@dataclass
class Outcome:
    """One run of the verify command."""

    tree: str  # "port" or "original"
    command: str
    cwd: str
    exit_code: Optional[int]  # None if it could not be started
    duration_s: float
    output_tail: List[str] = field(default_factory=list)
    pythonpath_added: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@contextlib.contextmanager
def shim_on_path(vendored: bool) -> Iterator[List[Path]]:
    """Folders to add to PYTHONPATH so that ``import runtime_shim`` works (none when vendored)."""
    if vendored:
        yield []
        return
    from .vendor import shim_source_file  # never imports the shim (or torch)

    source = shim_source_file()
    with tempfile.TemporaryDirectory(prefix="tdm-shim-") as tmp:
        if source.name == "__init__.py":
            link, target = Path(tmp) / "runtime_shim", source.parent
        else:
            link, target = Path(tmp) / "runtime_shim.py", source
        try:
            link.symlink_to(target, target_is_directory=target.is_dir())
        except OSError:  # no symlinks (Windows without privileges): a copy is the same code
            if target.is_dir():
                shutil.copytree(target, link, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(target, link)
        yield [Path(tmp)]


def run_command(command: str, cwd: Path, tree: str, extra_path: List[Path],
                echo: Optional[Callable[[str], None]] = None, timeout: Optional[float] = None) -> Outcome:
    """Run ``command`` through the shell in ``cwd``; keep the last TAIL_LINES lines of its output."""
    env = dict(os.environ)
    paths = [str(p) for p in extra_path]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(command, shell=True, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        return Outcome(tree, command, str(cwd), None, 0.0, [f"cannot run the command: {e}"], paths[:len(extra_path)])
    assert proc.stdout is not None
    deadline = None if timeout is None else start + timeout
    for raw in proc.stdout:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        tail.append(line)
        if echo:
            echo(line)
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            tail.append(f"[killed after {timeout:g} s]")
            break
    code = proc.wait()
    return Outcome(tree, command, str(cwd), code, round(time.monotonic() - start, 3), list(tail),
                   [str(p) for p in extra_path])


def build_report(summary, src: Path, dest: Path, shim_module: str, vendored: Optional[Path],
                 outcomes: List[Outcome]) -> Dict:
    """What the port did and how the verify command went, as plain data (the JSON report)."""
    by_status: Dict[str, int] = {s.value: 0 for s in FindingStatus}
    by_code: Dict[str, int] = {}
    changed, errors = [], []
    for result in summary.results:
        rel = _relative(result.path, src)
        if result.state is FileState.CHANGED:
            changed.append(rel)
        elif result.state is FileState.ERROR:
            errors.append(result.error or rel)
        for f in result.findings:
            by_status[f.status.value] += 1
            by_code[f.code] = by_code.get(f.code, 0) + 1
    left = [
        {"path": _relative(f.path, src), "cell": f.cell, "line": f.line, "column": f.column, "code": f.code,
         "status": f.status.value, "api": f.api, "message": f.message, "hint": f.hint}
        for r in summary.results for f in r.findings if f.status is not FindingStatus.REWRITTEN
    ]
    return {
        "tool": "torchdevice-migrate",
        "version": __version__,
        "source": str(src),
        "dest": str(dest),
        "shim_module": shim_module,
        "vendored_shim": _relative(str(vendored), dest) if vendored else None,
        "files": {"scanned": summary.scanned, "changed": changed, "errors": errors},
        "findings": {"by_status": by_status, "by_code": dict(sorted(by_code.items())), "left_for_review": left},
        "verify": [dict(asdict(o), ok=o.ok) for o in outcomes],
        "verify_ok": all(o.ok for o in outcomes if o.tree == "port") if outcomes else None,
    }


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path


def render_markdown(data: Dict) -> str:
    lines = ["# torchdevice-migrate report", "",
             f"Ported `{data['source']}` to `{data['dest']}` with torchdevice-migrate {data['version']}.", ""]
    shim = f"`{data['shim_module']}`"
    lines.append(f"Runtime shim: {shim}" + (f", vendored at `{data['vendored_shim']}`." if data["vendored_shim"] else
                                            " (installed with torchdevice-migrate)."))
    files = data["files"]
    lines += ["", "## Files", "", f"{files['scanned']} scanned, {len(files['changed'])} changed, "
              f"{len(files['errors'])} skipped with errors.", ""]
    lines += [f"- `{p}`" for p in files["changed"]]
    lines += [f"- error: {e}" for e in files["errors"]]
    counts = data["findings"]["by_status"]
    lines += ["", "## Findings", "", "| status | count |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in counts.items()]
    if data["findings"]["by_code"]:
        lines += ["", "| code | count |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in data["findings"]["by_code"].items()]
    left = data["findings"]["left_for_review"]
    if left:
        lines += ["", "Left for review:", ""]
        for f in left:
            cell = f"[cell {f['cell']}]" if f["cell"] is not None else ""
            lines.append(f"- `{f['path']}{cell}:{f['line']}:{f['column']}` {f['code']} [{f['status']}] "
                         f"`{f['api']}`: {f['message']}")
    for o in data["verify"]:
        result = "passed" if o["ok"] else ("could not start" if o["exit_code"] is None else f"failed (exit {o['exit_code']})")
        lines += ["", f"## Verify on the {o['tree']}", "", f"`{o['command']}` in `{o['cwd']}`: **{result}** "
                  f"in {o['duration_s']:.1f} s.", ""]
        if o["pythonpath_added"]:
            lines += [f"PYTHONPATH added: `{os.pathsep.join(o['pythonpath_added'])}` (the runtime shim).", ""]
        lines += [f"Last {len(o['output_tail'])} line(s) of output:", "", "```text", *o["output_tail"], "```"]
    return "\n".join(lines) + "\n"


def write_report(dest: Path, data: Dict) -> List[Path]:
    json_path, md_path = dest / REPORT_JSON, dest / REPORT_MD
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(render_markdown(data), encoding="utf-8")
    return [json_path, md_path]


def run_and_report(command: str, src: Path, dest: Path, summary, shim_module: str, vendored: Optional[Path] = None,
                   verify_original: bool = False, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
                   quiet: bool = False) -> int:
    """Run the verify command on the port (and the original), write the report; return the exit code."""
    from .engine import copy_tree

    outcomes = []
    with shim_on_path(vendored is not None) as extra:
        log(f"verify: running `{command}` in {dest}")
        outcomes.append(run_command(command, dest, "port", extra, echo=None if quiet else (lambda s: log("  | " + s))))
        if verify_original:
            with tempfile.TemporaryDirectory(prefix="tdm-original-") as tmp:
                copy = Path(tmp) / src.resolve().name
                copy_tree(src, copy)
                log(f"verify: running `{command}` on a copy of the original, {copy}")
                outcome = run_command(command, copy, "original", extra,
                                      echo=None if quiet else (lambda s: log("  | " + s)))
                outcome.cwd = f"{copy} (a temporary copy of {src}, removed afterwards)"
                outcomes.append(outcome)
    for o in outcomes:
        state = "passed" if o.ok else ("could not start" if o.exit_code is None else f"FAILED with exit code {o.exit_code}")
        log(f"verify ({o.tree}): {state} in {o.duration_s:.1f} s")
    written = write_report(dest, build_report(summary, src, dest, shim_module, vendored, outcomes))
    log(f"report written to {written[0]} and {written[1].name}")
    return 0 if outcomes[0].ok else EXIT_VERIFY_FAILED
