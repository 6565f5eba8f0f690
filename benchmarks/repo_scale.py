"""A whole repository: where the time goes, and how it compares with ``ast.parse``. Asserts nothing.

    python benchmarks/repo_scale.py TREE              # e.g. an unzipped transformers wheel
    python benchmarks/repo_scale.py TREE --jobs 2     # worker processes of the CLI runs
    python benchmarks/repo_scale.py TREE --no-phases  # only the CLI runs and ast.parse

Prints, for the ``.py`` files under TREE:

* the number of files and of candidates (the byte pre-filter's regexes, then after its comment and
  docstring check: the files LibCST parses);
* time per phase, measured one phase at a time in this process (one core): discover, prefilter,
  index (the project index of ``project_index.py`` over every file, without its cache),
  slice (``slicing.py``: what of each candidate LibCST will parse), parse (LibCST, of that), rules
  (the rest of porting a candidate, the layout pass included), write (the changed files, to a scratch copy);
* the real thing, on a copy of TREE made a project (a root marker, so the index cache is used, in a
  scratch folder): ``torchdevice-migrate --check`` with the cache cold, again with it warm (not
  with ``--cold``), and in place; wall time, CPU time, files per second, the peak RSS of the
  largest process (parent or worker), and when each step ended (imports, plan, the parallel
  read + pre-filter + index, candidates handed to the workers, every file ported, exit). The
  tool's own modules are byte-compiled first (``compileall``, into their ``__pycache__``, which git
  ignores), as ``pip install`` leaves an installed package: an editable checkout under
  PYTHONDONTWRITEBYTECODE would compile them again in every process (``--no-bytecode`` measures that);
* in the same run, the time ``ast.parse`` takes over the same files (one core, in a fresh interpreter:
  the files read first, the parse alone timed), and the ratio of each CLI run's wall time to it
  (issue 12 asks for at most 0.75).

Figures on a shared machine move; run it twice and compare.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from torchdevice_migrate.engine import discover, write_atomic  # noqa: E402
from torchdevice_migrate.options import Options, SourceError  # noqa: E402
from torchdevice_migrate.trigger import in_code, is_candidate  # noqa: E402

# ``ast.parse`` over the files, timed in a fresh interpreter (the files read first, the parse alone
# timed): in this process the phases above leave objects alive that make every garbage collection
# the parse sets off slower, which would flatter the ratio.
_AST_PARSE = """\
import ast, sys, time
sources = [open(p, "rb").read() for p in sys.stdin.read().splitlines()]
t = time.perf_counter()
for s in sources:
    try:
        ast.parse(s)
    except (SyntaxError, ValueError, RecursionError):
        pass
print(time.perf_counter() - t)
"""


def _ast_parse_seconds(files) -> float:
    done = subprocess.run([sys.executable, "-c", _AST_PARSE], input="\n".join(str(f) for f in files),
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# The CLI, run in a child process with its steps timed: ``plan`` (configuration, discovery) and the
# phases of ``engine.run`` (``RunSummary.phases``), in seconds from the interpreter's start.
_TIMED_CLI = """\
import json, os, sys, time
t0 = time.perf_counter()
from torchdevice_migrate import cli
marks = {"imports": time.perf_counter() - t0}
plan, run = cli.plan, cli.run
def timed_plan(*args, **kwargs):
    result = plan(*args, **kwargs)
    marks["plan"] = time.perf_counter() - t0
    return result
def timed_run(*args, **kwargs):
    start = time.perf_counter() - t0
    summary = run(*args, **kwargs)
    marks.update({k: start + v for k, v in getattr(summary, "phases", {}).items()})
    return summary
cli.plan, cli.run = timed_plan, timed_run
sys.argv = ["torchdevice-migrate", *sys.argv[1:]]
code = 0
try:
    cli.main()
except SystemExit as e:
    code = e.code
marks["end"] = time.perf_counter() - t0
with open(os.environ["TDM_BENCH_MARKS"], "w") as f:
    json.dump(marks, f)
sys.exit(code)
"""


def cli_run(args, jobs: int, cache: Path) -> dict:
    """One CLI run in a child process: wall, CPU (its workers included), peak RSS and its steps.
    ``cache``: the project index cache folder (``TORCHDEVICE_MIGRATE_CACHE``), never the user's."""
    cmd = [sys.executable, "-c", _TIMED_CLI, "--no-config", "-q", *(["-j", str(jobs)] if jobs else []), *args]
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL,"
            " stderr=subprocess.PIPE); rc = p.returncode\n"
            "wall = time.perf_counter() - t; r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(json.dumps(dict(rc=rc, wall=wall, cpu=r.ru_utime + r.ru_stime, rss_mb=r.ru_maxrss / 1024,"
            " err=p.stderr.decode(errors='replace')[-2000:])))\n")
    with tempfile.NamedTemporaryFile(suffix=".json") as marks:
        env = dict(os.environ, TORCHDEVICE_MIGRATE_CACHE=str(cache), TDM_BENCH_MARKS=marks.name,
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True, env=env)
        import json

        result = json.loads(out.stdout.strip().splitlines()[-1])
        try:
            result["marks"] = json.loads(Path(marks.name).read_text() or "{}")
        except ValueError:
            result["marks"] = {}
    return result


def _steps(marks: dict) -> str:
    names = (("imports", "imports"), ("plan", "plan (config, discover)"),
             ("indexed", "read + pre-filter + index"), ("dispatched", "candidates handed out"),
             ("done", "every file ported"), ("end", "exit"))
    return ", ".join(f"{label} {marks[k]:.2f}" for k, label in names if k in marks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("--jobs", type=int, default=0, help="-j for the CLI runs (0: its default)")
    parser.add_argument("--no-phases", action="store_true", help="skip the one-phase-at-a-time breakdown")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="leave the tool's own modules without bytecode (an editable checkout under "
                             "PYTHONDONTWRITEBYTECODE): each CLI process then compiles them again")
    parser.add_argument("--cold", action="store_true",
                        help="CLI runs with a cold index cache only (no second --check with the first's cache)")
    args = parser.parse_args()
    tree = args.tree.resolve()

    t = time.perf_counter()
    files = list(discover([tree], suffixes=(".py",)))
    t_discover = time.perf_counter() - t
    sources = {f: f.read_bytes() for f in files}
    size = sum(len(s) for s in sources.values())

    t = time.perf_counter()
    regex = [f for f in files if is_candidate(sources[f], refine=False)]
    t_regex = time.perf_counter() - t
    t = time.perf_counter()
    candidates = [f for f in regex if in_code(sources[f])]
    t_refine = time.perf_counter() - t

    print(f"tree: {tree}")
    print(f"files: {len(files)} ({size / 1e6:.1f} MB); candidates: {len(regex)} after the regexes, "
          f"{len(candidates)} after the comment/docstring check ({sum(len(sources[f]) for f in candidates) / 1e6:.1f} MB)")

    if not args.no_phases:
        t_index, index_note = None, ""
        try:
            from torchdevice_migrate import project_index

            t = time.perf_counter()
            index = project_index.build_index(files, None, cache=False)  # every file, as a CLI run (no cache)
            t_index = time.perf_counter() - t
            index_note = (f"over all {len(files)} files, no cache: {len(index.files)} parsed up front, "
                          f"{len(getattr(index, 'lazy', ()))} left for when a rule asks about their classes")
        except ImportError:
            pass
        import libcst as cst

        from torchdevice_migrate.slicing import plan as slice_plan
        from torchdevice_migrate.transform import migrate_source

        t_slice = t_parse = t_port = 0.0
        handed = sliced = 0
        changed = {}
        options = Options(layout=True)  # as the CLI ports: sliced (slicing.py), the layout pass on
        for f in candidates:
            s = sources[f]
            t = time.perf_counter()
            piece = slice_plan(s, options)
            t_slice += time.perf_counter() - t
            reduced = piece.reduced if piece is not None else s
            handed += len(reduced)
            sliced += piece is not None and reduced != s
            t = time.perf_counter()
            try:
                cst.parse_module(reduced)
            except Exception:
                pass
            t_parse += time.perf_counter() - t
            t = time.perf_counter()
            try:
                result = migrate_source(s, str(f), options, prefilter=False)
                if result.new != s:
                    changed[f] = result.new
            except SourceError:
                pass
            t_port += time.perf_counter() - t
        scratch = Path(tempfile.mkdtemp(prefix="tdm-bench-"))
        try:
            for f in changed:
                target = scratch / f.relative_to(tree)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(sources[f])
            t = time.perf_counter()
            for f, new in changed.items():
                write_atomic(scratch / f.relative_to(tree), new)
            t_write = time.perf_counter() - t
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        print("phases (one core, one at a time):")
        print(f"  discover   {t_discover:7.2f} s")
        print(f"  prefilter  {t_regex + t_refine:7.2f} s  (regexes {t_regex:.2f} s over all files, "
              f"comment/docstring check {t_refine:.2f} s over {len(regex)})")
        print(f"  index      {t_index:7.2f} s  ({index_note})"
              if t_index is not None else "  index         n/a  (no project_index module)")
        size = sum(len(sources[f]) for f in candidates)
        print(f"  slice      {t_slice:7.2f} s  ({sliced} of {len(candidates)} files sliced: "
              f"{size / 1e6:.2f} MB -> {handed / 1e6:.2f} MB handed to LibCST)")
        print(f"  parse      {t_parse:7.2f} s  (LibCST, what the port parses)")
        print(f"  rules      {max(t_port - t_slice - t_parse, 0):7.2f} s  (porting minus the slicing and the parse, "
              f"layout included; {len(changed)} files change)")
        print(f"  write      {t_write:7.2f} s  ({len(changed)} files, atomic, to a scratch copy)")

    t_ast = _ast_parse_seconds(files)

    # The CLI runs work on a copy of TREE that is a project (a root marker), so that the index
    # cache is used: the first --check finds it empty (cold), the second finds the first's (warm).
    work = Path(tempfile.mkdtemp(prefix="tdm-bench-tree-"))
    copy, cache = work / "tree", work / "cache"
    shutil.copytree(tree, copy, symlinks=True)
    from torchdevice_migrate.project_index import ROOT_MARKERS, find_root

    if find_root([copy]) != copy:
        (copy / ".git").mkdir()  # an empty marker: the copy is its own project
    # The tool as installed: ``pip install`` byte-compiles a package, an editable checkout in an
    # environment with PYTHONDONTWRITEBYTECODE has no bytecode, and every CLI process (parent and
    # workers) would compile the tool's modules from source again (~0.05 s of each run's wall time).
    bytecode = "no (--no-bytecode)"
    if args.no_bytecode:
        for cache_dir in (REPO / "torchdevice_migrate").rglob("__pycache__"):
            shutil.rmtree(cache_dir, ignore_errors=True)
    else:
        done = subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "torchdevice_migrate")],
                              capture_output=True)
        bytecode = "yes, as pip install leaves it" if done.returncode == 0 else "no (compileall failed)"
    runs = []
    try:
        runs.append(("--check", "cold", cli_run(["--check", str(copy)], args.jobs, cache)))
        if not args.cold:
            runs.append(("--check", "warm", cli_run(["--check", str(copy)], args.jobs, cache)))
        runs.append(("in place", "warm" if not args.cold else "cold",
                     cli_run([str(copy)], args.jobs, cache if not args.cold else work / "cache2")))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"ast.parse over the same {len(files)} files (one core): {t_ast:.2f} s")
    print(f"CLI runs on a copy of the tree that is a project ({'/'.join(ROOT_MARKERS)}), index cache in a "
          f"scratch folder: cold = empty, warm = the previous run's; the tool's modules byte-compiled: {bytecode}")
    for name, state, r in runs:
        print(f"CLI {name:9s} cache {state}  wall {r['wall']:6.2f} s  CPU {r['cpu']:6.2f} s  "
              f"{len(files) / r['wall']:6.0f} files/s  peak RSS {r['rss_mb']:.0f} MB (largest process)  "
              f"exit {r['rc']}  ratio to ast.parse {r['wall'] / t_ast:.2f}")
        if r["marks"]:
            print(f"    steps, seconds from the interpreter's start: {_steps(r['marks'])}")
        if "done" not in r["marks"]:  # the run did not get through its files: say why
            print("    the run stopped early:", r.get("err", "").strip()[-600:] or "(nothing on stderr)")
    print(f"({cores} cores available)")


if __name__ == "__main__":
    main()
