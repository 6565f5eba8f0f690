"""Files: discovery, reading bytes, migrating, and writing atomically. Files are independent."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import stat
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .findings import FileResult, FileState
from .options import Options, SourceError
from .trigger import is_candidate
from .vendor import MARKER as VENDORED_SHIM_MARKER

if TYPE_CHECKING:  # pragma: no cover
    from .project_index import IndexRequest

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


def _safe_skip_dir(path: Path) -> bool:
    try:
        return skip_dir(path)
    except OSError:  # e.g. a path longer than PATH_MAX: listing it will report the error
        return False


def _walk_error(path: Path, e: OSError, what: str) -> FileResult:
    display = str(path)
    return FileResult.failed(display, 0, f"{what}: {e.strerror or e}")


def discover(paths: Iterable[Path], excludes: Sequence[str] = (), suffixes: Sequence[str] = SOURCE_SUFFIXES,
             errors: Optional[List[FileResult]] = None) -> Iterator[Path]:
    """Python files and notebooks under ``paths`` in a stable order. Files named explicitly are always included.

    The walk uses an explicit stack (no recursion: any depth), never follows a link to a folder, and
    yields links and special files with a source suffix as they are (``migrate_path`` skips what is not
    a regular file, without opening it). A folder that cannot be listed becomes an error result in
    ``errors`` (when given) and the walk goes on.
    """
    seen = set()
    suffixes = tuple(suffixes)
    for root in paths:
        if not os.path.isdir(root):
            if root not in seen and not _excluded(root, excludes):
                seen.add(root)
                yield root
            continue
        stack = [root]
        while stack:
            here = stack.pop()
            try:
                with os.scandir(here) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as e:
                if errors is not None:
                    errors.append(_walk_error(here, e, "cannot list folder"))
                continue
            subdirs = []
            for entry in entries:
                f = here / entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir:
                    if not _safe_skip_dir(f) and not _excluded(f, excludes, root):
                        subdirs.append(f)
                elif entry.name.endswith(suffixes) and f not in seen and not _excluded(f, excludes, root):
                    seen.add(f)
                    yield f
            stack.extend(reversed(subdirs))


_KIND = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _not_regular(mode: int) -> str:
    return next((f"{name}, not a regular file" for test, name in _KIND if test(mode)), "not a regular file")


def read_regular(path: Path):
    """``(bytes, (size, mtime_ns))`` of a regular file (following links); ``OSError``/``NotRegularFile`` otherwise.

    Special files (FIFO, socket, device, also behind a link) are never opened: a FIFO would block and
    ``/dev/zero`` never ends. ``O_NONBLOCK`` and a second check on the open descriptor guard the race."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(_not_regular(st.st_mode))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(_not_regular(st.st_mode))
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks), (st.st_size, st.st_mtime_ns)
    finally:
        os.close(fd)


class NotRegularFile(Exception):
    """A FIFO, socket, device or folder where a source file was expected."""


def migrate_path(path: Path, options: Options) -> FileResult:
    """Read and migrate one file; never raises for a bad file, never writes."""
    display = str(path)
    try:
        source, read_stat = read_regular(path)
    except NotRegularFile as e:
        return FileResult.failed(display, 0, f"{e}; skipped")
    except OSError as e:
        return FileResult.failed(display, 0, f"cannot read: {e.strerror or e}")
    except MemoryError:
        return FileResult.failed(display, 0, "cannot read: too large")
    result = migrate_bytes(source, display, options)
    result.read_stat = read_stat
    return result


def migrate_bytes(source: bytes, display: str, options: Options, candidate: bool = False,
                  piece: Any = None) -> FileResult:
    """Migrate one file's bytes; never raises for a bad file. ``candidate``: the caller found
    ``is_candidate(source, options.project)`` True already (the parallel runner's scan); ``piece``:
    a one-element list holding its ``slicing.plan`` of these bytes (or that pickled), when it made one."""
    if source.startswith(VENDORED_SHIM_MARKER):  # a shim written by --vendor: porting it would break it
        return FileResult(display, FileState.UNCHANGED, original=source, new=source)
    if display.endswith(".ipynb"):
        from .notebook import migrate_notebook  # local import: only notebooks pay for it

        return migrate_notebook(source, display, options)
    if not candidate and not is_candidate(source, options.project):  # no CUDA API: not parsed, no LibCST
        return FileResult(display, FileState.UNCHANGED, original=source, new=source)
    from .transform import migrate_source  # local import: only files that may use CUDA pay for LibCST

    try:
        if piece:  # a slice planned elsewhere, maybe still pickled (the index cache keeps it so)
            import pickle

            planned = pickle.loads(piece[0]) if isinstance(piece[0], bytes) else piece[0]
            result = migrate_source(source, display, options, prefilter=False, piece=planned)
        else:
            result = migrate_source(source, display, options, prefilter=False)  # the pre-filter just ran
    except SourceError as e:
        return FileResult.failed(display, e.line, e.reason, original=source)
    except RecursionError:
        return FileResult.failed(display, 1, "too deeply nested to process", original=source)
    except Exception as e:  # a bug in a rule must never cost the user a file or the rest of the run
        return FileResult.failed(display, 1, f"internal error ({type(e).__name__}: {e}); file left untouched, please report",
                                 original=source)
    state = FileState.CHANGED if result.new != source else FileState.UNCHANGED
    return FileResult(display, state, original=source, new=result.new, findings=result.findings)


class WriteRefused(Exception):
    """A port that must not be written (a link out of the tree, an edit made since the file was read)."""


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def write_atomic(path: Path, data: bytes, *, original: Optional[bytes] = None,
                 read_stat: Optional[Tuple[int, int]] = None, root: Optional[Path] = None,
                 follow_links: bool = True) -> None:
    """Write through a temporary file in the same folder and rename it over the target.

    Mode, owner and group are kept. ``root``: the target (after links) must lie inside it, else
    ``WriteRefused``. ``follow_links=False`` (``--out``): a link at ``path`` is never written through.
    ``original``/``read_stat``: the file must still hold these bytes (and size, mtime_ns) just before
    the rename, else ``WriteRefused``: an edit made since it was read is never lost. On any error the
    temporary file is removed and the target is as it was."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        lst = None
    if lst is not None and stat.S_ISLNK(lst.st_mode):
        if not follow_links:
            raise WriteRefused(f"is a symbolic link (to {os.readlink(path)}); not written through")
        target = os.path.realpath(path)
        if root is not None and not _inside(target, os.path.realpath(root)):
            raise WriteRefused(f"is a symbolic link to {target}, outside {os.path.realpath(root)}; not written")
    else:
        target = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
        if root is not None and not _inside(target, os.path.realpath(root)):
            raise WriteRefused(f"resolves to {target}, outside {os.path.realpath(root)}; not written")
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
        if original is not None:
            raise WriteRefused("was removed since it was read; not written") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise WriteRefused(f"{_not_regular(st.st_mode)}; not written")

    def unchanged() -> bool:
        if original is None:
            return True
        try:
            now, now_stat = read_regular(Path(target))
        except (OSError, NotRegularFile):
            return False
        return now == original and (read_stat is None or now_stat == tuple(read_stat))

    if not unchanged():
        raise WriteRefused("changed since it was read; not written (run again to port the new content)")
    with _temporary_beside(target) as (fd, tmp):
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            if hasattr(os, "chown") and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError:
                    raise WriteRefused(f"its owner and group ({st.st_uid}:{st.st_gid}) cannot be kept; "
                                       "not written") from None
        if not unchanged():  # last look just before the rename
            raise WriteRefused("changed since it was read; not written (run again to port the new content)")
        os.replace(tmp, target)


@contextlib.contextmanager
def _temporary_beside(target: str) -> Iterator[Tuple[int, str]]:
    """``(fd, path)`` of a new temporary file in ``target``'s folder, for the caller to fill and rename
    over ``target``; on any error (a full disk, a signal) it is removed and the error goes on."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tdm-tmp",
                               dir=os.path.dirname(target))
    try:
        yield fd, tmp
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass
class RunSummary:
    results: List[FileResult] = field(default_factory=list)
    #: When each step of ``run`` ended, in seconds from its start: ``indexed`` (the project index
    #: built, and in a parallel run every file read and pre-filtered), ``dispatched`` (every
    #: candidate handed to a worker; parallel runs), ``done`` (every file ported). For benchmarks.
    phases: Dict[str, float] = field(default_factory=dict)

    @property
    def scanned(self) -> int:
        return len(self.results)

    @property
    def changed(self) -> List[FileResult]:
        return [r for r in self.results if r.state is FileState.CHANGED]

    @property
    def errors(self) -> List[FileResult]:
        return [r for r in self.results if r.state is FileState.ERROR]


def run(files: Sequence[Path], options: Options, jobs: int = 1,
        on_result: Optional[Callable[[FileResult], None]] = None, progress: Optional[bool] = None,
        index: Optional[IndexRequest] = None, own_process: bool = False) -> RunSummary:
    """Migrate ``files`` (in parallel when ``jobs > 1``); results come back in input order.

    ``index``: the project index to build first (``project_index.IndexRequest``); it becomes
    ``options.project`` before any file is ported. A parallel run builds it in its workers, in the
    same pass that reads and pre-filters ``files``.
    ``progress``: a progress bar on standard error (rich); None: only for a parallel run whose
    standard error is a terminal. Where worker processes cannot be started (no ``/dev/shm``, a
    sandbox that forbids them), the files are migrated in this process instead: parallelism is an
    optimisation, never a failure.
    ``own_process``: the caller owns this process (the CLI), so a port here may ``settle_heap()``, and
    the garbage collector runs between files (``collect_between_files``).
    """
    summary = RunSummary()
    start = time.perf_counter()
    parallel = jobs > 1 and len(files) > 1
    collecting = own_process and not _BETWEEN_FILES
    was_on = collect_between_files() if collecting else False
    if progress is None:
        progress = parallel and _stderr_is_terminal()
    bar = _ProgressBar(len(files)) if progress else None
    results: Iterable[FileResult] = ()
    try:
        if parallel:
            try:
                results = _parallel(files, options, jobs, index, summary.phases, start)
            except (OSError, ImportError, BrokenProcessPool):
                results = _in_process(files, options, index, summary.phases, start, own_process)
        else:
            results = _in_process(files, options, index, summary.phases, start, own_process)
        for result in results:
            summary.results.append(result)
            if bar is not None:
                bar.advance()
            if on_result:
                on_result(result)
        summary.phases["done"] = time.perf_counter() - start
    finally:
        if isinstance(results, _Collected):
            results.close()  # a run ended early (a signal, an error in on_result) stops its workers
        if bar is not None:
            bar.close()
        if collecting:
            collect_on_its_own(was_on)  # the run is over: the process (a test's, calling the CLI) as it was
    return summary


def _in_process(files: Sequence[Path], options: Options, index: Optional[IndexRequest],
                phases: Dict[str, float], start: float, own_process: bool = False) -> Iterator[FileResult]:
    if index is not None:
        options.project = index.build()
    phases["indexed"] = time.perf_counter() - start
    settle = own_process
    for f in files:
        result = migrate_path(f, options)
        if own_process:
            between_files()
        yield result
        if settle and "torchdevice_migrate.transform" in sys.modules:  # a candidate imported LibCST
            settle_heap()
            settle = False


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _ProgressBar:
    """A rich progress bar on standard error (imported only when one is shown)."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("porting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task("porting", total=total)
        self._progress.start()

    def advance(self) -> None:
        self._progress.advance(self._task)

    def close(self) -> None:
        self._progress.stop()


# ---- the parallel runner ------------------------------------------------------------------------
#
# Two steps, in one pool of worker processes. The scan: the workers read every file (the files to
# port and those of the project index, each once), run the byte pre-filter's regexes and compute
# each file's index entry (``project_index.index_entry``), a chunk of files per task; the parent
# merges the entries in the project's file order, which gives the index a one-process run builds.
# The port: only candidates go back to the workers, one task each with their bytes (what was read
# is what gets ported and written), the largest first. The index goes to each worker once, through
# a queue each worker reads when its first candidate comes. A worker left without a chunk to scan
# while the last ones are scanned imports LibCST (``_warm_up``).
# Workers never write files: the parent writes after the run, so a signal needs no cleanup in the
# workers. They ignore SIGINT (the parent handles Ctrl-C and stops them), and die with the parent
# (PR_SET_PDEATHSIG on Linux).


_WORKER_OPTIONS: Optional[Options] = None  # the run's options, given once to each worker (not with each file)
_WORKER_INDEX_QUEUE: Any = None  # where this worker's copy of the project index comes from (None: in the options)
_WORKER_CACHE: Dict[str, object] = {}  # the index cache's entries (digest -> entry), for the scan


def _worker_init(parent: int = 0, options: Optional[Options] = None, index_queue: Any = None,
                 cache: Optional[Dict[str, object]] = None) -> None:
    global _WORKER_OPTIONS, _WORKER_INDEX_QUEUE, _WORKER_CACHE
    _WORKER_OPTIONS, _WORKER_INDEX_QUEUE, _WORKER_CACHE = options, index_queue, cache or {}
    collect_between_files()
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (cli.py), inherited by fork
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except Exception:  # pragma: no cover - no libc: the parent still stops the pool itself
            pass
    # The parent may have died between forking this worker and the prctl above: then no signal
    # will ever come, and the worker would wait for tasks forever.
    if parent and os.getppid() != parent:
        os._exit(1)


class _UsesCuda:
    """A project that uses CUDA: ``is_candidate`` then also applies the project trigger. ``asked``:
    whether ``is_candidate`` looked at the project at all (it does only where the project trigger
    matches; where it did not, its answer is the same for any project)."""

    def __init__(self) -> None:
        self.asked = False

    @property
    def uses_cuda(self) -> bool:
        self.asked = True
        return True


# What the scan says of a file to port. Where the comment/docstring check could run on the ``ast``
# tree the index entry just parsed: a candidate, or one if the project uses CUDA (``is_candidate``'s
# answers with and without the project), or none. Elsewhere the regexes' answer, and the worker runs
# the check (with the parse the slicing of a large file makes anyway): maybe a candidate, maybe one
# if the project uses CUDA. A notebook: the worker decides.
_NOT_CANDIDATE, _CANDIDATE, _IF_PROJECT_USES_CUDA, _NOTEBOOK, _MAYBE, _MAYBE_IF_PROJECT_USES_CUDA = range(6)


def _port_as(kind: int, project_uses_cuda: bool) -> Optional[bool]:
    """Whether a file the scan said ``kind`` of goes to a worker (None: it is no candidate), and if so
    whether the worker may skip the pre-filter (True: the scan ran ``is_candidate``, which said yes)."""
    if kind == _CANDIDATE or (kind == _IF_PROJECT_USES_CUDA and project_uses_cuda):
        return True
    if kind in (_NOTEBOOK, _MAYBE) or (kind == _MAYBE_IF_PROJECT_USES_CUDA and project_uses_cuda):
        return False
    return None


def _scan(items: List[Tuple[Path, bool, bool]]) -> List[Optional[Tuple[Optional[bytes], Any, int, str, Any, Any]]]:
    """Per ``(path, port, index)``: None when it cannot be read (the parent reports it, as
    ``migrate_path`` does); else ``(source if port, (size, mtime_ns), what the pre-filter says if
    port, digest and index entry if index, the decision)``: ``(kind, slice)`` where the index entry's
    parse let the scan answer exactly (the slice planned for a candidate of slicing size), else None."""
    from .project_index import index_entry

    out: List[Optional[Tuple[Optional[bytes], Any, int, str, Any, Any]]] = []
    for path, port, index in items:
        try:
            source, read_stat = read_regular(path)
        except (NotRegularFile, OSError, MemoryError):
            out.append(None)
            continue
        kind, digest, entry, parsed = _NOT_CANDIDATE, "", None, False
        decided = None
        if index:
            digest, entry, parsed = index_entry(source, _WORKER_CACHE)
        if port:
            if str(path).endswith(".ipynb"):
                kind = _NOTEBOOK
            else:
                probe = _UsesCuda()
                if is_candidate(source, probe, refine=False):  # one pass of the regexes over most files
                    plain = is_candidate(source, None, refine=False)
                    if not parsed:  # no tree at hand: the worker checks (its parse serves the slicing too)
                        kind = _MAYBE if plain else _MAYBE_IF_PROJECT_USES_CUDA
                    # Exact answers, for a project that uses CUDA and for one that does not (more
                    # triggers only add matches: a candidate without the project is one with it).
                    elif plain and is_candidate(source, None):
                        kind = _CANDIDATE
                    elif probe.asked and is_candidate(source, _UsesCuda()):
                        kind = _IF_PROJECT_USES_CUDA
                    if parsed and _WORKER_OPTIONS is not None:
                        decided = (kind, _planned(source, kind, _WORKER_OPTIONS))
        out.append((source if port else None, read_stat, kind, digest, entry, decided))
        if parsed:
            between_files()
    return out


def _planned(source: bytes, kind: int, options: Options) -> Any:
    """The slice of a candidate the scan parsed (the tree is at hand here and not in the worker that
    ports the file), fit to send; None for no candidate, or no slice."""
    if kind == _NOT_CANDIDATE or options.slice_min_bytes is None or len(source) < options.slice_min_bytes:
        return None
    from .slicing import plan

    planned = plan(source, options)
    return planned.to_send() if planned is not None else None


def _migrate_candidate(source: bytes, display: str, candidate: bool, piece: Any = None) -> Tuple[FileResult, bool, bool]:
    """The port of one file the scan found (``candidate``: it ran ``is_candidate`` on these bytes,
    which said True), with whether its ``original`` and ``new`` were left out (they are ``source``,
    which the parent holds: not sent back)."""
    global _WORKER_INDEX_QUEUE
    assert _WORKER_OPTIONS is not None
    settle_heap()
    if _WORKER_INDEX_QUEUE is not None:  # this worker's first candidate: the index, once the scan is merged
        import pickle

        _WORKER_OPTIONS.project = pickle.loads(_WORKER_INDEX_QUEUE.get())
        _WORKER_INDEX_QUEUE = None
        _freeze()  # the index lives as long as the worker: out of the collector's view too
    result = migrate_bytes(source, display, _WORKER_OPTIONS, candidate=candidate, piece=piece)
    between_files()
    same_original, same_new = result.original is source, result.new is source
    if same_original:
        result.original = b""
    if same_new:
        result.new = b""
    return result, same_original, same_new


def _warm_up() -> None:
    """LibCST and the rules imported, in a worker that has no chunk left to scan."""
    settle_heap()


_HEAP_SETTLED = False


def settle_heap() -> None:
    """Import LibCST and the rules, then take everything this process holds so far out of the
    garbage collector's view (``gc.freeze``): a port allocates millions of short-lived nodes, and
    each of the collector's full passes would walk the modules' objects again (about 8 % of the
    port's time). Only for a process this tool owns (a worker, the CLI): frozen objects are never
    collected."""
    global _HEAP_SETTLED
    if not _HEAP_SETTLED:
        from . import transform  # noqa: F401

        _freeze()
        _HEAP_SETTLED = True


def _freeze() -> None:
    import gc

    gc.freeze()


_BETWEEN_FILES = False
#: Young objects (``gc.get_count()[0]``: those allocated, less those freed, since the last collection)
#: above which ``between_files`` collects. A port leaves little in reference cycles (RuleContext.release),
#: so most files need no collection; a few tens of MB of garbage at most wait for one.
_YOUNG_LIMIT = 200_000


def collect_between_files() -> bool:
    """In a process this tool owns (a worker, the CLI), the cyclic garbage collector no longer runs
    on its own but in ``between_files``. Run on its own, it walks the trees a port is working on
    again and again (a collection each 700 allocations, and every young object is walked again when
    it gets older): about a tenth of a port's CPU time on transformers. Between files, a tree is
    garbage, freed by reference counting as soon as it is dropped (``RuleContext.release`` breaks the
    scope analysis's cycles), or collected there once. Returns whether the collector was on."""
    global _BETWEEN_FILES
    import gc

    was_on = gc.isenabled()
    gc.disable()
    gc.freeze()  # what lives now (modules, a worker's inherited heap) lives as long as the process
    _BETWEEN_FILES = True
    return was_on


def collect_on_its_own(on: bool = True) -> None:
    """Undo ``collect_between_files``: the collector back ``on`` (or off) as it was (what was frozen
    stays frozen: it lives on anyway)."""
    global _BETWEEN_FILES
    import gc

    _BETWEEN_FILES = False
    if on:
        gc.enable()


def between_files() -> None:
    """The collection ``collect_between_files`` moved here, when a file left enough to collect."""
    if _BETWEEN_FILES:
        import gc

        if gc.get_count()[0] > _YOUNG_LIMIT:
            gc.collect(1)


#: Scan tasks per worker: small enough that the workers finish the scan together.
_SCAN_CHUNKS_PER_WORKER = 16


def _parallel(files: Sequence[Path], options: Options, jobs: int, index: Optional[IndexRequest] = None,
              phases: Optional[Dict[str, float]] = None, start: float = 0.0) -> _Collected:
    """Start the workers, scan, build the index (``index``, into ``options.project``) and hand the
    workers the candidates; raises OSError/ImportError/BrokenProcessPool when workers cannot be
    started or die during the scan (the caller then migrates in this process)."""
    import multiprocessing
    import pickle

    from .project_index import IndexBuilder

    builder = None
    if index is not None and index.built is None:
        builder = IndexBuilder(index.root, cache=index.cache)
    elif index is not None:
        options.project = index.built
    # What to read: each file to port and each file to index, once (by absolute path).
    items: List[Tuple[Path, bool, bool]] = []
    port_slot: List[int] = []  # item of each file to port
    index_slot: List[Tuple[Path, int]] = []  # (path, item) of each file to index, in the project's order
    where: Dict[str, int] = {}
    for f in files:
        where.setdefault(os.path.abspath(f), len(items))
        port_slot.append(len(items))
        items.append((f, True, False))
    for f in (index.files if index is not None else ()):
        if not str(f).endswith((".py", ".pyi")):
            continue
        at = where.get(os.path.abspath(f))
        if at is None:
            at = where[os.path.abspath(f)] = len(items)
            items.append((f, False, True))
        else:
            items[at] = (items[at][0], items[at][1], True)
        index_slot.append((f, at))

    context = multiprocessing.get_context()
    index_queue = context.Queue() if builder is not None else None
    # A forkserver's workers are its children, not this process's: their parent is no sign of ours.
    parent = 0 if context.get_start_method() == "forkserver" else os.getpid()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_worker_init,
                               initargs=(parent, options, index_queue, builder.old if builder else None))
    try:
        n = max(1, min(len(items), jobs * _SCAN_CHUNKS_PER_WORKER))
        bounds = [len(items) * i // n for i in range(n + 1)]
        chunks = {pool.submit(_scan, items[lo:hi]): lo for lo, hi in zip(bounds, bounds[1:]) if hi > lo}
        scanned: List[Any] = [None] * len(items)
        port_of = {at: i for i, at in enumerate(port_slot)}
        pending: List[Any] = [None] * len(files)  # a FileResult, (path,) to read again (an error), or a task
        warmed = False
        for done in as_completed(chunks):
            lo = chunks[done]
            for k, record in enumerate(done.result(), lo):
                scanned[k] = record
                if not warmed and record is not None and record[2] != _NOT_CANDIDATE and k in port_of:
                    warmed = True  # queued behind the scan: a worker left without a chunk imports LibCST
                    for _ in range(jobs):
                        pool.submit(_warm_up)
        if builder is not None:
            for f, at in index_slot:
                record = scanned[at]
                if record is not None:
                    builder.add(f, record[3], record[4])
            if options.slice_min_bytes is not None:
                _decisions(builder, scanned, port_slot, options)
            assert index is not None
            options.project = index.built = builder.finish()
            blob = pickle.dumps(options.project, protocol=pickle.HIGHEST_PROTOCOL)
            assert index_queue is not None
            index_queue.cancel_join_thread()  # a copy no worker takes never holds up the end of the run
            for _ in range(jobs):  # one copy for each worker (each takes one, with its first candidate)
                index_queue.put(blob)
        if phases is not None:
            phases["indexed"] = time.perf_counter() - start
        project = options.project
        project_uses_cuda = project is not None and bool(project.uses_cuda)
        candidates = []
        for i, at in enumerate(port_slot):
            record = scanned[at]
            if record is None:
                pending[i] = (files[i],)  # cannot be read: migrate_path gives the error (read again)
            elif _port_as(record[2], project_uses_cuda) is not None:
                candidates.append(i)
            else:
                result = FileResult(str(files[i]), FileState.UNCHANGED, original=record[0], new=record[0])
                result.read_stat = record[1]
                pending[i] = result
        # The largest first: the last task to end is a small one (the results keep the files' order).
        for i in sorted(candidates, key=lambda i: -len(scanned[port_slot[i]][0])):
            source, read_stat, kind = scanned[port_slot[i]][:3]
            decided = scanned[port_slot[i]][5]
            display = str(files[i])
            pending[i] = (pool.submit(_migrate_candidate, source, display, bool(_port_as(kind, project_uses_cuda)),
                                      [decided[1]] if decided is not None else None), source, display, read_stat)
        if phases is not None:
            phases["dispatched"] = time.perf_counter() - start
    except BaseException:
        _stop(pool)
        raise
    return _Collected(pool, pending, options)


def _decisions(builder: Any, scanned: List[Any], port_slot: List[int], options: Options) -> None:
    """The scan's decisions in the index cache (``IndexBuilder.plans``): those this scan made (a cold
    file: parsed for the index), kept for the next run, and, for a file this scan could not decide
    (no tree: its index entry came from the cache), the decision cached for its bytes, which then
    stands as the scan's own (no parse to plan it, or to find its CUDA words only in comments)."""
    import pickle

    from .project_index import plan_signature

    signature = plan_signature(options.target, options.shim_module, options.slice_min_bytes)
    # The decisions for the project's other files stay (a run on a subfolder keeps the rest's); those
    # for bytes no file of the project holds now, or of another tool or options, go.
    plans: Dict[Tuple[str, str], object] = {k: v for k, v in builder.old_plans.items()
                                            if k[1] == signature and k[0] in builder.entries}
    for at in port_slot:
        record = scanned[at]
        if record is None or not record[3]:
            continue
        key = (record[3], signature)
        decided = record[5]
        if decided is None and record[2] in (_MAYBE, _MAYBE_IF_PROJECT_USES_CUDA):
            cached = builder.old_plans.get(key)
            if isinstance(cached, tuple) and len(cached) == 2:
                decided = cached
                scanned[at] = (*record[:2], decided[0], *record[3:5], decided)
        if decided is not None:
            kind, piece = decided
            # A slice is kept pickled on its own: loading the cache must not import LibCST (slicing.py).
            plans[key] = (kind, pickle.dumps(piece, protocol=pickle.HIGHEST_PROTOCOL) if piece is not None
                          and not isinstance(piece, bytes) else piece)
    builder.plans = plans


class _Collected:
    """The parallel run's results, in the files' order. ``close()`` stops the workers if the
    results were not all taken: whatever ends the run early (Ctrl-C, SIGTERM turned into
    SystemExit, an error while a result is written), even before the first result or between two
    (where a generator would not see it, and the interpreter's exit would wait for every queued
    port to finish)."""

    def __init__(self, pool: ProcessPoolExecutor, pending: List[Any], options: Options) -> None:
        self._pool, self._pending, self._options = pool, pending, options
        self._open = True

    def __iter__(self) -> Iterator[FileResult]:
        try:
            for item in self._pending:
                if isinstance(item, FileResult):
                    yield item
                    continue
                if len(item) == 1:
                    yield migrate_path(item[0], self._options)
                    continue
                future, source, display, read_stat = item
                try:
                    result, same_original, same_new = future.result()
                    if same_original:
                        result.original = source
                    if same_new:
                        result.new = source
                except BrokenProcessPool:  # a worker died (killed, out of memory): port it here instead
                    result = migrate_bytes(source, display, self._options)
                result.read_stat = read_stat
                yield result
            self._open = False
            self._pool.shutdown(wait=True)
        finally:
            self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            _stop(self._pool)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now. A worker ended in the middle of sending a result leaves the pool's
    manager thread waiting for the rest of that message, and the interpreter's exit waits for that
    thread: so once the workers are gone, this process's end of the result pipe is closed too, and
    the manager thread sees the end of the pipe instead of waiting forever."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    results = getattr(pool, "_result_queue", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        try:
            p.terminate()
        except Exception:  # pragma: no cover - already gone
            pass
    for p in processes:
        try:
            p.join(timeout=5)
        except Exception:  # pragma: no cover
            pass
    writer = getattr(results, "_writer", None)
    if writer is not None:  # (a worker still alive keeps its own end: the manager then waits for it)
        try:
            writer.close()
        except OSError:  # pragma: no cover - already closed
            pass


COPY_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".nox"}


@dataclass
class CopyReport:
    """What ``copy_tree`` left out: ``skipped`` (special files, by design) and ``errors`` (failures)."""

    skipped: List[Tuple[str, str]] = field(default_factory=list)
    errors: List[Tuple[str, str]] = field(default_factory=list)


def _copy_file(src: str, dest: str) -> None:
    """Copy a regular file through a temporary file in the destination folder: never a truncated file."""
    with _temporary_beside(dest) as (fd, tmp):
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            shutil.copyfileobj(f, out)
            out.flush()
        shutil.copystat(src, tmp, follow_symlinks=False)
        os.replace(tmp, dest)


def copy_tree(src: Path, dest: Path) -> CopyReport:
    """Copy ``src`` to ``dest`` as is (for ``--out``), skipping VCS folders, caches and virtualenvs.

    Links are copied as links (never followed), FIFOs, sockets and devices are skipped, regular files
    are copied through a temporary file and renamed. Walks without recursion; a failure is recorded in
    the returned report and the copy goes on. Nothing is ever written outside ``dest``."""
    report = CopyReport()
    os.makedirs(dest, exist_ok=True)
    stack = [(str(src), str(dest))]
    made: List[Tuple[str, str]] = []
    while stack:
        s_dir, d_dir = stack.pop()
        try:
            with os.scandir(s_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            report.errors.append((s_dir, f"cannot list folder: {e.strerror or e}"))
            continue
        subdirs = []
        for entry in entries:
            s_path, d_path = os.path.join(s_dir, entry.name), os.path.join(d_dir, entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    if os.path.lexists(d_path):
                        raise FileExistsError(17, "exists in the destination")
                    os.symlink(os.readlink(s_path), d_path)
                elif stat.S_ISDIR(st.st_mode):
                    if entry.name in COPY_SKIP_DIRS or _is_virtualenv(Path(s_path)):
                        continue
                    if not os.path.isdir(d_path) or os.path.islink(d_path):
                        os.mkdir(d_path)
                    subdirs.append((s_path, d_path))
                    made.append((s_path, d_path))
                elif stat.S_ISREG(st.st_mode):
                    if os.path.islink(d_path):
                        raise FileExistsError(17, "a link in the destination; not written through")
                    _copy_file(s_path, d_path)
                else:
                    report.skipped.append((s_path, _not_regular(st.st_mode)))
            except OSError as e:
                report.errors.append((s_path, f"cannot copy: {e.strerror or e}"))
        stack.extend(reversed(subdirs))
    for s_path, d_path in reversed(made):  # modes and times last: a read-only folder is filled first
        try:
            shutil.copystat(s_path, d_path, follow_symlinks=False)
        except OSError:
            pass
    return report
