"""One staged file, the pre-commit case (issue 12): the latency of one command. Prints figures; asserts nothing.

    python benchmarks/staged_file.py                      # --version, --help, a file without CUDA, three with
    python benchmarks/staged_file.py FILE... [--repeat N] # these files, each copied alone to a scratch folder
    python benchmarks/staged_file.py --project ROOT FILE  # FILE (relative to ROOT) inside its project (index, config)
    python benchmarks/staged_file.py --pyc                # with a bytecode cache (PYTHONDONTWRITEBYTECODE unset)

Each command runs ``--repeat`` times in a fresh interpreter (``python -m torchdevice_migrate``, one
warm-up run first); the wall time and the CPU time (user + system, less sensitive to a shared machine)
are printed as min-max ranges, with the heaviest imports of one run (``-X importtime``). Without
``--pyc`` the environment decides: where ``PYTHONDONTWRITEBYTECODE`` is set, every run compiles the
package's sources (~0.1 s for a ported file).
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
DEFAULT_FILES = ["fixtures/realworld/amp_decorators.py", "fixtures/realworld/device_constructors.py",
                 "fixtures/realworld/dataparallel.py"]
#: A staged file without CUDA: the byte pre-filter leaves it alone, LibCST is never imported.
PLAIN = "import os\n\n\ndef main(path):\n    with open(os.path.join(path, 'x.txt')) as f:\n        return f.read()\n"


def _run(args, cwd: Path, env) -> tuple:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "torchdevice_migrate", *args], cwd=cwd, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def _heaviest_imports(args, cwd: Path, env, n: int = 4) -> str:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "torchdevice_migrate", *args], cwd=cwd,
                         env=env, capture_output=True, text=True)
    top = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):  # imported by our code or the interpreter, not by another import
                top.append((int(cumulative), name.strip()))
    return ", ".join(f"{name} {us / 1e6:.3f}" for us, name in sorted(top, reverse=True)[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--project", type=Path, help="run in this project root (its config and index)")
    parser.add_argument("--pyc", action="store_true", help="cache the bytecode (in a scratch folder)")
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        if args.pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(scratch_path / "pyc")
        env.setdefault("TORCHDEVICE_MIGRATE_CACHE", str(scratch_path / "index-cache"))
        if args.project is not None:
            cwd = args.project.resolve()
            commands = [[name, ["--check", name]] for name in args.files]
        else:
            cwd = scratch_path / "work"
            cwd.mkdir()
            commands = []
            if not args.files:
                (cwd / "plain.py").write_text(PLAIN)
                commands.append(["plain.py (no CUDA)", ["--no-config", "--check", "plain.py"]])
            for name in args.files or DEFAULT_FILES:
                source = Path(name) if Path(name).exists() else REPO / name
                shutil.copy(source, cwd / source.name)
                commands.append([source.name, ["--no-config", "--check", source.name]])
        commands = [["--version", ["--version"]], ["--help", ["--help"]], *commands]
        print(f"python {sys.version.split()[0]}, bytecode cache: {'yes' if args.pyc else 'as the environment says'}"
              f" (PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '')!r}); {args.repeat} runs each")
        for label, command in commands:
            _run(command, cwd, env)  # warm-up: page cache, bytecode, project index cache
            walls, cpus = zip(*(_run(command, cwd, env) for _ in range(args.repeat)))
            print(f"{label:28s} wall {min(walls):.3f}-{max(walls):.3f} s   cpu {min(cpus):.3f}-{max(cpus):.3f} s")
            print(f"{'':28s} heaviest imports (s): {_heaviest_imports(command, cwd, env)}")


if __name__ == "__main__":
    main()
