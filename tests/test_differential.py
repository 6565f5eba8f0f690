"""Differential harness: every fixture input runs before and after the port on this CPU machine.

The contract (docs/device-policy.md): where the original did its work on a CPU-only torch, the port
does the same work the same way, so it must exit the same way and print the same thing (timings
masked). Where the original crashed, the port runs, or it fails the same way for a reason that has
nothing to do with CUDA (a fixture is often a snippet that reads an undefined ``args``), or the port
reports a site it left for a person (review or unsupported).

A case opts out with a marker line in its input:

* ``# differential: skip (reason)``: not run at all (needs a GPU library, a compiler, the network);
* ``# differential: port-only (reason)``: the original is known not to do its work on a CPU-only
  machine without failing (zero workers started): only the port must exit 0.

One driver process imports torch once and forks a child per run (the original, then the port), each
in its own empty working directory, with stdout and stderr captured; so the whole harness costs a
few seconds, not one interpreter start per case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
MARKER_RE = re.compile(r"^#\s*differential:\s*(skip|port-only)\b\s*(?:\((?P<reason>[^)]*)\))?", re.M)
TIMING_LINE_RE = re.compile(r"(time|elapsed|took|\bms\b|\bsec|seconds|it/s|throughput|tflops|samples/s)", re.I)
NUMBER_RE = re.compile(r"\d+(\.\d+)?(e[-+]?\d+)?")
CHILD_TIMEOUT_S = 60


def _cases():
    return sorted(p for p in FIXTURES.glob("*/*.py")
                  if not p.name.endswith(".expected.py") and p.parent.name != "projects")


def _marker(path: Path):
    m = MARKER_RE.search(path.read_text(encoding="utf-8-sig", errors="replace"))
    return (m.group(1), m.group("reason") or "") if m else (None, "")


def _bound_names(path: Path) -> set:
    """Names a case binds anywhere (assignments, definitions, imports, parameters)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8-sig"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def mask_timings(text: str) -> str:
    """Numbers on lines that report a duration or a rate are masked; every other number counts."""
    return "\n".join(NUMBER_RE.sub("<n>", line) if TIMING_LINE_RE.search(line) else line
                     for line in text.splitlines())


# ------------------------------------------------------------------------------------------------
# The driver: ``python tests/test_differential.py OUTDIR CASE...`` writes OUTDIR/results.json.
# ------------------------------------------------------------------------------------------------
def _run_child(script: Path, workdir: Path, out: Path) -> dict:
    """Fork; the child runs ``script`` as ``__main__`` in ``workdir`` with stdout/stderr to files."""
    stdout, stderr, info = out.with_suffix(".out"), out.with_suffix(".err"), out.with_suffix(".json")
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.chdir(workdir)
            fd_out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            fd_err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            fd_in = os.open(os.devnull, os.O_RDONLY)
            os.dup2(fd_out, 1), os.dup2(fd_err, 2), os.dup2(fd_in, 0)
            sys.argv = [str(script)]
            sys.path.insert(0, str(script.parent))
            import runpy
            import signal
            import traceback
            signal.alarm(CHILD_TIMEOUT_S)
            error = None
            try:
                runpy.run_path(str(script), run_name="__main__")
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if e.code is not None and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
            except BaseException as e:  # noqa: BLE001 - the child reports every failure
                traceback.print_exc()
                tb = traceback.extract_tb(e.__traceback__)
                line = next((f.lineno for f in reversed(tb) if f.filename == str(script)), None)
                message = str(e).splitlines()[0] if str(e) else ""
                error = {"type": type(e).__name__, "message": message.replace(str(script.parent), "<dir>"),
                         "line": line, "name": getattr(e, "name", None)}
                code = 1
            sys.stdout.flush(), sys.stderr.flush()
            info.write_text(json.dumps({"error": error}))
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    error = json.loads(info.read_text())["error"] if info.exists() else {"type": "Killed", "message": str(rc), "line": None}
    return {"rc": rc, "seconds": round(time.monotonic() - started, 2), "stdout": stdout.read_text(errors="replace"), "stderr": stderr.read_text(errors="replace")[-2000:],
            "error": error}


def _driver(outdir: Path, cases) -> None:
    import torch  # noqa: F401 - imported once here, inherited by every forked child

    try:  # what every port imports; importing it resolves nothing (the device is chosen on first use)
        import runtime_shim  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken shim shows in the ports' own runs
        pass

    from torchdevice_migrate.transform import migrate_source

    results = {}
    for case in map(Path, cases):
        base = Path(tempfile.mkdtemp(dir=outdir))
        (base / "orig").mkdir(), (base / "port").mkdir(), (base / "wd_orig").mkdir(), (base / "wd_port").mkdir()
        source = case.read_bytes()
        migrated = migrate_source(source, str(case))
        orig, port = base / "orig" / case.name, base / "port" / case.name
        orig.write_bytes(source)
        port.write_bytes(migrated.new)
        results[str(case)] = {
            "original": _run_child(orig, base / "wd_orig", base / "orig_run"),
            "port": _run_child(port, base / "wd_port", base / "port_run"),
            "findings": [{"line": f.line, "code": f.code, "status": f.status.value} for f in migrated.findings],
            "changed": migrated.new != source,
        }
    (outdir / "results.json").write_text(json.dumps(results))


# ------------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------------
CASES = _cases()
RUN = [c for c in CASES if _marker(c)[0] != "skip"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("differential")
    env = {k: v for k, v in os.environ.items() if k != "TORCHDEVICE_DEVICE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run([sys.executable, __file__, str(outdir), *map(str, RUN)], env=env, cwd=str(outdir),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((outdir / "results.json").read_text())


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.stem}"


def test_markers_give_reasons():
    for case in CASES:
        kind, reason = _marker(case)
        if kind is not None:
            assert reason.strip(), f"{_id(case)}: '# differential: {kind}' needs a (reason)"


def test_mask_timings_keeps_other_numbers():
    assert mask_timings("step took 12.5 ms\nloss 0.25") == "step took <n> ms\nloss 0.25"


def test_registry_lists_what_the_shim_answers():
    """The codemod keeps a literal copy (it never imports the shim); it must match the shim's own."""
    runtime_shim = pytest.importorskip("runtime_shim")
    from torchdevice_migrate.registry import DEVICE_PROPERTY_ATTRIBUTES, MEMORY_STATS_KEYS

    assert DEVICE_PROPERTY_ATTRIBUTES == runtime_shim.DEVICE_PROPERTY_ATTRIBUTES
    assert MEMORY_STATS_KEYS == runtime_shim.MEMORY_STATS_KEYS


def test_shim_answers_listed_properties_and_names_the_others_on_cpu(monkeypatch):
    runtime_shim = pytest.importorskip("runtime_shim")
    from torchdevice_migrate.registry import DEVICE_PROPERTY_ATTRIBUTES, MEMORY_STATS_KEYS

    monkeypatch.setenv("TORCHDEVICE_DEVICE", "cpu")
    runtime_shim._reset()
    try:
        props = runtime_shim.get_device_properties(0)
        for attr in DEVICE_PROPERTY_ATTRIBUTES:
            getattr(props, attr)
        with pytest.raises(runtime_shim.UnsupportedOnBackend, match="L2_cache_size"):
            props.L2_cache_size
        assert MEMORY_STATS_KEYS <= set(runtime_shim.memory_stats())
    finally:
        runtime_shim._reset()


@pytest.mark.parametrize("case", RUN, ids=_id)
def test_port_keeps_what_the_original_did(case: Path, results):
    r = results[str(case)]
    orig, port = r["original"], r["port"]
    detail = f"\n--- original (rc {orig['rc']}):\n{orig['stdout']}{orig['stderr']}\n--- port (rc {port['rc']}):\n{port['stdout']}{port['stderr']}"
    if _marker(case)[0] == "port-only":
        assert port["rc"] == 0, "the port must do the work the original skipped" + detail
        return
    if orig["rc"] == 0:
        # The original did its work on this CPU-only machine: the port does the same work the same way.
        assert port["rc"] == 0, "the port fails where the original ran" + detail
        assert mask_timings(port["stdout"]) == mask_timings(orig["stdout"]), "different output" + detail
        return
    if port["rc"] == 0:
        return  # the original crashed; the port does the work
    oe, pe = orig["error"] or {}, port["error"] or {}
    if (oe.get("type"), oe.get("message")) == (pe.get("type"), pe.get("message")) and oe.get("type") is not None:
        # Both fail the same way, for a reason that is not CUDA (an undefined name in a snippet).
        assert "cuda" not in (oe.get("message") or "").lower() or any(
            f["status"] != "rewritten" for f in r["findings"]), "a CUDA failure kept, with no finding" + detail
        return
    if pe.get("type") == "NameError" and pe.get("name") and pe["name"] not in _bound_names(case):
        return  # the port got past the original's failure to a name the snippet never defines
    reported = [f for f in r["findings"] if f["status"] != "rewritten"]
    assert reported, "the original crashed and the port crashes differently, with no finding" + detail


if __name__ == "__main__":
    _driver(Path(sys.argv[1]), sys.argv[2:])
