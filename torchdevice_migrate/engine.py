"""Files: discovery, reading bytes, migrating, and writing atomically. Files are independent."""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

from .findings import FileResult, FileState
from .transform import Options, SourceError, migrate_source
from .vendor import MARKER as VENDORED_SHIM_MARKER

# Folders never descended into.
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "build", "dist", "node_modules", ".venv", "venv", "env",
             ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".eggs", "site-packages"}
PYTHON_SUFFIXES = (".py", ".pyi")
NOTEBOOK_SUFFIXES = (".ipynb",)  # ported cell by cell (notebook.py)
SOURCE_SUFFIXES = PYTHON_SUFFIXES + NOTEBOOK_SUFFIXES


def _is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file() or (path / "conda-meta").is_dir()


def _excluded(path: Path, excludes: Sequence[str], root: Optional[Path] = None) -> bool:
    if not excludes:
        return False
    candidates = {path.as_posix(), path.name}
    if root is not None:
        try:
            candidates.add(path.relative_to(root).as_posix())
        except ValueError:
            pass
    return any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.rstrip("/") + "/*")
               for c in candidates for pattern in excludes)


def skip_dir(path: Path) -> bool:
    return path.name in SKIP_DIRS or path.name.endswith(".egg-info") or _is_virtualenv(path)


def discover(paths: Iterable[Path], excludes: Sequence[str] = (), suffixes: Sequence[str] = SOURCE_SUFFIXES) -> Iterator[Path]:
    """Python files and notebooks under ``paths`` in a stable order. Files named explicitly are always included."""
    seen = set()
    for root in paths:
        if root.is_file():
            if root not in seen and not _excluded(root, excludes):
                seen.add(root)
                yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames
                                 if not skip_dir(here / d) and not _excluded(here / d, excludes, root))
            for name in sorted(filenames):
                f = here / name
                if name.endswith(tuple(suffixes)) and f not in seen and not _excluded(f, excludes, root):
                    seen.add(f)
                    yield f


def migrate_path(path: Path, options: Options) -> FileResult:
    """Read and migrate one file; never raises for a bad file, never writes."""
    display = str(path)
    try:
        source = path.read_bytes()
    except OSError as e:
        return FileResult(display, FileState.ERROR, error=f"{display}:0: cannot read: {e.strerror or e}")
    return migrate_bytes(source, display, options)


def migrate_bytes(source: bytes, display: str, options: Options) -> FileResult:
    if source.startswith(VENDORED_SHIM_MARKER):  # a shim written by --vendor: porting it would break it
        return FileResult(display, FileState.UNCHANGED, original=source, new=source)
    if display.endswith(".ipynb"):
        from .notebook import migrate_notebook  # local import: only notebooks pay for it

        return migrate_notebook(source, display, options)
    try:
        result = migrate_source(source, display, options)
    except SourceError as e:
        return FileResult(display, FileState.ERROR, original=source, error=f"{display}:{e.line}: {e.reason}")
    except RecursionError:
        return FileResult(display, FileState.ERROR, original=source, error=f"{display}:1: too deeply nested to process")
    except Exception as e:  # a bug in a rule must never cost the user a file or the rest of the run
        return FileResult(display, FileState.ERROR, original=source,
                          error=f"{display}:1: internal error ({type(e).__name__}: {e}); file left untouched, please report")
    state = FileState.CHANGED if result.new != source else FileState.UNCHANGED
    return FileResult(display, state, original=source, new=result.new, findings=result.findings)


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename it over the target; mode kept."""
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tdm-tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass
class RunSummary:
    results: List[FileResult] = field(default_factory=list)

    @property
    def scanned(self) -> int:
        return len(self.results)

    @property
    def changed(self) -> List[FileResult]:
        return [r for r in self.results if r.state is FileState.CHANGED]

    @property
    def errors(self) -> List[FileResult]:
        return [r for r in self.results if r.state is FileState.ERROR]


def _work(args) -> FileResult:
    path, options = args
    return migrate_path(path, options)


def run(files: Sequence[Path], options: Options, jobs: int = 1,
        on_result: Optional[Callable[[FileResult], None]] = None) -> RunSummary:
    """Migrate ``files`` (in parallel when ``jobs > 1``); results come back in input order.

    Where worker processes cannot be started (no ``/dev/shm``, a sandbox that forbids them), the
    files are migrated in this process instead: parallelism is an optimisation, never a failure.
    """
    summary = RunSummary()
    results: Iterable[FileResult]
    if jobs > 1 and len(files) > 1:
        try:
            results = _parallel(files, options, jobs)
        except (OSError, ImportError, BrokenProcessPool):
            results = (migrate_path(f, options) for f in files)
    else:
        results = (migrate_path(f, options) for f in files)
    for result in results:
        summary.results.append(result)
        if on_result:
            on_result(result)
    return summary


def _parallel(files: Sequence[Path], options: Options, jobs: int) -> List[FileResult]:
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_work, [(f, options) for f in files], chunksize=1))


def copy_tree(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` as is (for ``--out``), skipping VCS folders, caches and virtualenvs."""

    def ignore(directory: str, names: List[str]) -> List[str]:
        here = Path(directory)
        return [n for n in names if (here / n).is_dir() and (n in {".git", ".hg", ".svn", "__pycache__", ".mypy_cache",
                                                                      ".pytest_cache", ".ruff_cache", ".tox", ".nox"}
                                                             or _is_virtualenv(here / n))]

    shutil.copytree(src, dest, ignore=ignore, symlinks=True, dirs_exist_ok=True)
