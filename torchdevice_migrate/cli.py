"""The ``torchdevice-migrate`` command line."""

from __future__ import annotations

import difflib
import io
import os
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Set

import typer
from rich.console import Console
from rich.text import Text

from . import __version__
from . import vendor as vendoring  # issue 7: --vendor
from . import verify as verifying  # issue 7: --verify
from .engine import RunSummary, copy_tree, discover, run, write_atomic
from .findings import FileResult, FileState, FindingStatus
from .report import FORMATS, build_report, default_docs_base, render

# config (and through it the rules and LibCST) is imported by ``plan`` when a run needs it:
# ``--version``, ``--help`` and files that use no CUDA API never load LibCST (issue 12).
if TYPE_CHECKING:  # pragma: no cover
    from .config import Settings
    from .options import Options
    from .project_index import IndexRequest

EXIT_OK, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2

EPILOG = """\
[bold]Examples[/bold]

  torchdevice-migrate src/ --diff          show what would change, write nothing
  torchdevice-migrate src/                 port in place
  torchdevice-migrate src/ --check         CI: exit 1 if anything would change
  torchdevice-migrate repo/ --out ported/  write a ported copy of repo/ to ported/
  torchdevice-migrate src/ --report        what would be ported and what needs a person
  torchdevice-migrate src/ --report --format sarif --output tdm.sarif   for GitHub code scanning

[bold]Configuration[/bold]

  A [tool.torchdevice-migrate] table in the nearest pyproject.toml above the paths
  (keys: exclude, select, ignore, shim-module, target); flags override it.

[bold]Exit codes[/bold]

  0  success (nothing to change under --check; --report: the report was written)
  1  --check: files would change
  2  usage error, or files that could not be read or parsed (reported, left untouched)
  3  --verify: the command failed on the port (see DEST/torchdevice-migrate-report.md)
"""

app = typer.Typer(add_completion=False, rich_markup_mode="rich", context_settings={"help_option_names": ["-h", "--help"]})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"torchdevice-migrate {__version__}")
        raise typer.Exit(EXIT_OK)


def _decode(data: bytes) -> str:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError):
        return data.decode("utf-8", errors="replace")


def unified_diff(result: FileResult) -> str:
    if result.path.endswith(".ipynb"):  # notebooks: a diff per changed cell, named path[cell N]
        from .notebook import cell_diff
        return cell_diff(printable(result.path), result.original, result.new or b"")
    old = _decode(result.original).splitlines(keepends=True)
    new = _decode(result.new or b"").splitlines(keepends=True)
    name = printable(result.path).lstrip("/")
    lines = difflib.unified_diff(old, new, fromfile=f"a/{name}", tofile=f"b/{name}")
    out = []
    for line in lines:
        out.append(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def printable(text: str) -> str:
    """``text`` with the undecodable bytes of a file name (surrogate escapes) shown as ``\\xNN``."""
    from .report import printable as _printable

    return _printable(text)


def _print_diff(text: str, console: Console) -> None:
    if not console.is_terminal:
        sys.stdout.write(text)
        return
    for line in text.splitlines():
        style = ("bold" if line.startswith(("---", "+++")) else "green" if line.startswith("+")
                 else "red" if line.startswith("-") else "cyan" if line.startswith("@@") else None)
        console.print(Text(line, style=style or ""), soft_wrap=True)


@app.command(epilog=EPILOG, help="Port CUDA-specific PyTorch code to portable code (CUDA, XPU, MPS or CPU).")
def migrate(
    paths: List[Path] = typer.Argument(..., help="Files or folders to port.", show_default=False),
    diff: bool = typer.Option(False, "--diff", help="Print a unified diff and write nothing."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if anything would change."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DEST",
                                       help="Write a ported copy of one source tree to DEST instead of editing in place."),
    report: bool = typer.Option(False, "--report", help="Write nothing; print a report of every site (see --format)."),
    fmt: str = typer.Option("text", "--format", metavar="FORMAT", help=f"Report format: {'|'.join(FORMATS)}."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE",
                                          help="Write the report to FILE instead of standard output."),
    exclude: List[str] = typer.Option([], "--exclude", metavar="GLOB",
                                      help="Skip paths matching GLOB (repeatable; added to the configured ones)."),
    select: List[str] = typer.Option([], "--select", metavar="CODES",
                                     help="Only these reason codes or prefixes, e.g. TDM1,TDM201 (repeatable)."),
    ignore: List[str] = typer.Option([], "--ignore", metavar="CODES",
                                     help="Leave these reason codes or prefixes alone (repeatable)."),
    shim_module: Optional[str] = typer.Option(None, "--shim-module", metavar="MODULE", show_default=False,
                                              help="Import path of the runtime shim in migrated code [default: runtime_shim]."),
    target: Optional[str] = typer.Option(None, "--target", metavar="shim|torch", show_default=False,
                                         help="shim: portable everywhere through the runtime shim [default]; "
                                              "torch: torch's own API only, for upstream pull requests (docs/targets.md)."),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE",
                                          help="Read [tool.torchdevice-migrate] from FILE instead of the nearest pyproject.toml."),
    no_config: bool = typer.Option(False, "--no-config", help="Ignore configuration files."),
    reformat: bool = typer.Option(False, "--reformat",
                                  help="Run the project's own formatter (ruff or black, from its configuration) on the "
                                       "changed statements only (ruff format --range / black --line-ranges)."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Worker processes (0: one per CPU for many files)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and the summary."),
    vendor: Optional[Path] = typer.Option(None, "--vendor", metavar="PATH",
                                          help="Copy the runtime shim to PATH/runtime_shim.py (PATH relative to the project root) and import it from there."),
    verify: Optional[str] = typer.Option(None, "--verify", metavar="COMMAND",
                                         help="With --out: run COMMAND (shell) in the port, write DEST/torchdevice-migrate-report.json/.md; exit 3 if it fails."),
    verify_original: bool = typer.Option(False, "--verify-original", help="With --verify: also run COMMAND on a copy of the original."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    console = Console(highlight=False)
    try:
        the_plan = plan(paths, diff=diff, check=check, out=out, report=report, fmt=fmt, output=output, exclude=exclude,
                        select=select, ignore=ignore, shim_module=shim_module, target=target, config=config,
                        no_config=no_config, jobs=jobs, quiet=quiet, vendor=vendor, verify=verify,
                        verify_original=verify_original, reformat=reformat)
    except UsageError as e:
        err.print(f"error: {e}", markup=False)
        raise typer.Exit(EXIT_ERROR) from None
    summary = run_plan(the_plan)
    raise typer.Exit(emit(the_plan, summary, console, err))


class UsageError(Exception):
    """A command line that cannot run (printed as ``error: <message>``; exit code 2)."""


@dataclass
class Plan:
    """What one ``migrate`` command does: checked arguments, settings, the files and the project's facts.
    Nothing is ported or written yet."""

    paths: List[Path]
    settings: Settings
    options: Options
    files: List[Path] = field(default_factory=list)
    #: Folders that could not be listed: one error line each in the run's results.
    walk_errors: List[FileResult] = field(default_factory=list)
    diff: bool = False
    check: bool = False
    report: bool = False
    fmt: str = "text"
    output: Optional[Path] = None
    out: Optional[Path] = None
    jobs: int = 0
    quiet: bool = False
    vendor_plan: Optional[vendoring.VendorPlan] = None
    verify: Optional[str] = None
    verify_original: bool = False
    #: ``--reformat``: the formatter run on the changed statements of each port (``formatting.py``).
    reformat: Optional[str] = None
    #: The project index to build (``project_index.IndexRequest``): the run step builds it into
    #: ``options.project`` before it ports anything (a parallel run, in its workers).
    index: Optional[IndexRequest] = None

    @property
    def write(self) -> bool:
        """Files are written (in place or under ``out``): not ``--diff``, ``--check`` or ``--report``."""
        return not (self.diff or self.check or self.report)


def plan(paths: List[Path], *, diff: bool = False, check: bool = False, out: Optional[Path] = None,
         report: bool = False, fmt: str = "text", output: Optional[Path] = None, exclude: Sequence[str] = (),
         select: Sequence[str] = (), ignore: Sequence[str] = (), shim_module: Optional[str] = None,
         target: Optional[str] = None, config: Optional[Path] = None, no_config: bool = False, jobs: int = 0,
         quiet: bool = False, vendor: Optional[Path] = None, verify: Optional[str] = None,
         verify_original: bool = False, reformat: bool = False) -> Plan:
    """The plan step: check the arguments against each other and the file system, read the
    configuration, find the files and the project's files to index (``Plan.index``; the run step
    builds the index). Raises ``UsageError``; ports and writes nothing."""
    for p in paths:
        if not p.exists():
            raise UsageError(f"{p}: no such file or folder")
    if out is not None:
        if len(paths) != 1 or not paths[0].is_dir():
            raise UsageError("--out takes exactly one source folder")
        if (out.exists() or out.is_symlink()) and not out.is_dir():
            raise UsageError(f"--out {out}: exists and is not a folder")
        try:
            out_not_empty = out.exists() and any(out.iterdir())
        except OSError as e:
            raise UsageError(f"--out {out}: {e.strerror or e}") from None
        if out_not_empty:
            raise UsageError(f"--out {out}: folder exists and is not empty")
        if out.resolve().is_relative_to(paths[0].resolve()):
            raise UsageError("--out must not be inside the source folder")
    if report and (diff or out is not None):
        raise UsageError("--report cannot be combined with --diff or --out")
    if not report and (output is not None or fmt != "text"):
        raise UsageError("--format and --output go with --report")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    vendor_plan = None
    try:
        verifying.check_usage(verify, verify_original, out, write=not (diff or check or report))
        if vendor is not None:
            vendor_plan = vendoring.plan(vendor, paths, out, shim_module)
            shim_module = vendor_plan.module
    except (vendoring.VendorError, verifying.VerifyUsageError) as e:
        raise UsageError(str(e)) from None
    from .config import ConfigError, load_settings  # local: see the imports at the top

    try:
        settings = load_settings(paths, config=config, no_config=no_config, exclude=list(exclude),
                                 select=list(select), ignore=list(ignore), shim_module=shim_module, target=target)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    options = settings.options()
    formatter = _formatter(settings) if reformat else None
    walk_errors: List[FileResult] = []
    walked = list(discover(paths, settings.cli_exclude, errors=walk_errors))
    files = [f for f in walked if not settings.excluded(f)]
    index = None
    if files:  # the whole project, once: a staged file is judged as in a whole-tree run
        from .project_index import index_request

        # Without --exclude the walk above is the index's walk of the same paths (not made twice).
        index = index_request(paths, walked=None if settings.cli_exclude else walked)
    return Plan(paths, settings, options, files, walk_errors, diff=diff, check=check, report=report, fmt=fmt,
                output=output, out=out, jobs=jobs, quiet=quiet, vendor_plan=vendor_plan, verify=verify,
                verify_original=verify_original, reformat=formatter, index=index)


def _formatter(settings: Settings) -> str:
    """``--reformat``: the formatter the project uses, installed (else ``UsageError``)."""
    from .formatting import executable

    formatter = settings.style.formatter
    if formatter is None:
        raise UsageError("--reformat: the project configures no formatter ([tool.ruff], ruff.toml, [tool.black] "
                         "or a ruff/black pre-commit hook)")
    if executable(formatter) is None:
        raise UsageError(f"--reformat: the project formats with {formatter}, which is not installed "
                         f"(pip install {formatter})")
    return formatter


def run_plan(the_plan: Plan) -> RunSummary:
    """The run step: index the project (``options.project``) and port every planned file in memory
    (nothing written)."""
    files, jobs = the_plan.files, the_plan.jobs
    if jobs <= 0:
        jobs = min(os.cpu_count() or 1, 8) if len(files) >= 8 else 1
    summary = run(files, the_plan.options, jobs=jobs, index=the_plan.index, own_process=True)
    summary.results.extend(the_plan.walk_errors)  # folders that could not be listed: one error line each
    if the_plan.reformat is not None:
        _reformat(summary, the_plan.reformat)
    return summary


def _reformat(summary: RunSummary, formatter: str) -> None:
    """The formatter on each port's changed statements (``formatting.py``); notebooks are left as ported."""
    from .formatting import FormatterError, reformat

    for result in summary.results:
        if result.state is FileState.ERROR or not result.changed or result.path.endswith(".ipynb"):
            continue
        try:
            result.new = reformat(result.original, result.new or b"", result.path, formatter)
        except FormatterError as e:
            result.fail(0, f"--reformat: {e}; left as it was")


def emit(the_plan: Plan, summary: RunSummary, console: Console, err: Console) -> int:
    """The emit step: the report, the diffs or the written files, the vendored shim, the summary and
    ``--verify``. Returns the exit code; a file that cannot be written becomes that file's error."""
    quiet, out = the_plan.quiet, the_plan.out
    if the_plan.report:
        if not _write_report(summary, the_plan.settings, the_plan.fmt, the_plan.output, console, err, quiet):
            return EXIT_ERROR
        if the_plan.check and summary.changed:
            return EXIT_CHANGES
        return EXIT_ERROR if summary.errors else EXIT_OK
    write = the_plan.write
    if out is not None:
        try:
            copied = copy_tree(the_plan.paths[0], out)
        except OSError as e:  # DEST itself cannot be made
            err.print(f"error: --out {out}: {e.strerror or e}", markup=False)
            return EXIT_ERROR
        for where, why in copied.skipped:
            if not quiet:
                err.print(f"note: {where}: {why}; not copied", markup=False)
        for where, why in copied.errors:
            summary.results.append(FileResult.failed(where, 0, why))
    written_targets: Set[str] = set()
    for result in summary.results:
        if result.state is FileState.ERROR:
            err.print(f"error: {result.error}", markup=False)
            continue
        if not result.changed:
            continue
        if the_plan.diff:
            _print_diff(unified_diff(result), console)
        if write:
            target = _write_port(result, the_plan.paths, out, written_targets)
            if result.written and not quiet:
                err.print(f"ported {target}", markup=False)
            elif result.state is FileState.ERROR:
                err.print(f"error: {result.error}", markup=False)

    vendor_plan = the_plan.vendor_plan
    if vendor_plan is not None and write:
        vendored = vendor_plan.write()
        if not quiet:
            err.print(f"vendored the runtime shim as {vendored.path} (import {vendored.module})", markup=False)

    _print_review(summary, err, quiet)
    _print_summary(summary, err, write=write)
    verify_exit = EXIT_OK
    if the_plan.verify is not None and out is not None:
        verify_exit = verifying.run_and_report(the_plan.verify, the_plan.paths[0], out, summary,
                                               the_plan.options.shim_module,
                                               vendor_plan.dir / "runtime_shim.py" if vendor_plan else None,
                                               the_plan.verify_original, log=lambda s: err.print(s, markup=False),
                                               quiet=quiet)
    if summary.errors:
        return EXIT_ERROR
    if verify_exit:
        return verify_exit
    if the_plan.check and summary.changed:
        return EXIT_CHANGES
    return EXIT_OK


def _tree_of(path: Path, paths: List[Path]) -> Path:
    """The argument ``path`` was found under: its folder, or the folder holding a file named explicitly."""
    for p in paths:
        if path == p:
            return p if p.is_dir() else (p.parent if str(p.parent) else Path("."))
    for p in paths:
        try:
            path.relative_to(p)
            return p
        except ValueError:
            continue
    return path.parent


def _write_port(result: FileResult, paths: List[Path], out: Optional[Path], written: Set[str]) -> Path:
    """Write one port (in place, or under ``out``); a failure becomes the file's error, never an exception.

    In place: the file must still hold the bytes that were read, and a link is followed only to a file
    inside the tree it was found in (the argument's real path). With ``--out``: only under DEST, never
    through a link. Owner, group and mode are kept."""
    from .engine import WriteRefused

    path = Path(result.path)
    if out is not None:
        target = out / path.relative_to(paths[0])
        kwargs: Dict[str, Any] = dict(root=out, follow_links=False)
    else:
        target = path
        kwargs = dict(root=_tree_of(path, paths), original=result.original, read_stat=result.read_stat)
    try:
        real = os.path.realpath(target)
    except (OSError, ValueError):
        real = str(target)
    if out is None and real in written:  # the same file again, by a link: already ported
        result.written = True
        return target
    try:
        write_atomic(target, result.new or b"", **kwargs)
    except WriteRefused as e:
        result.fail(0, str(e))
    except OSError as e:
        what = e.strerror or str(e)
        result.fail(0, f"cannot write {target}: {what}; left as it was")
    else:
        result.written = True
        written.add(real)
    return target


def _write_report(summary: RunSummary, settings: Settings, fmt: str, output: Optional[Path], console: Console,
                  err: Console, quiet: bool) -> bool:
    """``--report``: errors on standard error, the report on standard output or in ``output``
    (False: ``output`` could not be written)."""
    for result in summary.errors:
        err.print(f"error: {result.error}", markup=False)
    data = build_report(summary.results, settings.describe(), docs_base=default_docs_base())
    # One rendering for both destinations: -o FILE holds exactly the bytes standard output would get
    # when it is not a terminal (colour and terminal width only for an interactive terminal).
    terminal = output is None and console.is_terminal
    text = render(data, fmt, color=terminal and not console.no_color, width=console.width if terminal else 120,
                  docs_base=default_docs_base())
    # Machine formats are UTF-8 whatever the locale; text on a terminal follows the terminal's encoding.
    encoding = (sys.stdout.encoding or "utf-8") if (fmt == "text" and terminal) else "utf-8"
    payload = text.encode(encoding, errors="backslashreplace")
    if output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return True
    try:
        output.write_bytes(payload)
    except OSError as e:
        err.print(f"error: --output {output}: {e.strerror or e}", markup=False)
        return False
    if not quiet:
        err.print(f"report written to {output}", markup=False)
    return True


def _print_review(summary: RunSummary, err: Console, quiet: bool) -> None:
    left = [f for r in summary.results for f in r.findings if f.status is not FindingStatus.REWRITTEN]
    if not left or quiet:
        return
    err.print(f"\n{len(left)} site(s) left as is, for review:", markup=False)
    for f in left:
        err.print(f"  {f.location()}: {f.code} [{f.status.value}] {f.api}: {f.message}", markup=False)
        if f.hint:
            err.print(f"      hint: {f.hint}", markup=False)


def _print_summary(summary: RunSummary, err: Console, write: bool) -> None:
    findings = [f for r in summary.results for f in r.findings]
    rewritten = sum(f.status is FindingStatus.REWRITTEN for f in findings)
    review = sum(f.status is FindingStatus.REVIEW for f in findings)
    unsupported = sum(f.status is FindingStatus.UNSUPPORTED for f in findings)
    verb = "changed" if write else "would change"
    err.print(
        f"{summary.scanned} file(s) scanned, {len(summary.changed)} {verb}, {len(summary.errors)} skipped with errors; "
        f"{rewritten} site(s) rewritten, {review} for review, {unsupported} unsupported.",
        markup=False,
    )


def _terminate(signum, frame) -> None:
    """SIGTERM ends the run like Ctrl-C: the worker pool is stopped and a write in progress removes
    its temporary file (``write_atomic``), so no ``.tdm-tmp`` file survives."""
    raise SystemExit(128 + signum)


def main() -> None:
    import signal

    try:
        signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # pragma: no cover - not the main thread (embedded use)
        pass
    app(prog_name="torchdevice-migrate")
