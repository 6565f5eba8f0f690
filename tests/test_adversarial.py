"""Adversarial checks (issue 14): links, special files, odd names, full disks, signals, hostile report content.

Each check builds the situation from the issue's description and asserts what a user must see: no write
outside the tree (or DEST), no lost edit, no traceback or hang, one error line per failure and exit code 2,
files that can be ported still ported. Runs as root here and in CI (mounts, chown, setuid); a check that
needs root skips with a reason otherwise.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchdevice_migrate import engine
from torchdevice_migrate.engine import WriteRefused, copy_tree, discover, migrate_path, write_atomic
from torchdevice_migrate.findings import FileResult, FileState, Finding, FindingStatus
from torchdevice_migrate.report import FORMATS, build_report, to_csv
from torchdevice_migrate.transform import Options, migrate_source, migrate_text

from .conftest import run_cli

CUDA_SRC = "import torch\n\nx = torch.ones(2).cuda()\n"
PORTED_MARK = "runtime_shim"
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chown, mount, mknod, setuid)")


def cli(args, cwd=None, env=None, timeout=60):
    r = run_cli(args, cwd=cwd, env=env, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def ported(path: Path) -> bool:
    return PORTED_MARK in path.read_text(errors="replace")


def no_temp_files(*roots: Path) -> bool:
    return not any(name.endswith(".tdm-tmp") for root in roots for _, _, names in os.walk(root) for name in names)


# ---------------------------------------------------------------------------------------------
# Writes outside the tree it was given
# ---------------------------------------------------------------------------------------------

def _link_layout(tmp_path: Path):
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    tree.mkdir()
    outside.mkdir()
    (outside / "victim.py").write_text(CUDA_SRC)
    (tree / "a.py").write_text(CUDA_SRC)
    (tree / "real.py").write_text(CUDA_SRC)
    (tree / "link_out.py").symlink_to(outside / "victim.py")  # absolute link out of the tree
    (tree / "link_rel_out.py").symlink_to(Path("..") / "outside" / "victim.py")
    (tree / "link_in.py").symlink_to("real.py")  # a link inside the tree: fine in place
    return tree, outside


def test_in_place_never_writes_through_a_link_out_of_the_tree(tmp_path, cli_env):
    tree, outside = _link_layout(tmp_path)
    r = cli([tree], env=cli_env)
    assert r.returncode == 2
    assert (outside / "victim.py").read_text() == CUDA_SRC
    assert "link_out.py" in r.stderr and "outside" in r.stderr and "link_rel_out.py" in r.stderr
    assert ported(tree / "a.py") and ported(tree / "real.py")
    assert (tree / "link_in.py").is_symlink() and ported(tree / "link_in.py")
    assert "link_in.py:0" not in r.stderr and "real.py:0" not in r.stderr  # one file, two names: ported once
    assert (tree / "link_out.py").is_symlink()


def test_out_writes_nothing_but_dest(tmp_path, cli_env):
    tree, outside = _link_layout(tmp_path)
    (tree / "link_abs_in.py").symlink_to(tree / "real.py")  # absolute link back into the source tree
    before = {p: p.read_bytes() for p in list(tree.iterdir()) + list(outside.iterdir())}
    dest = tmp_path / "dest"
    r = cli([tree, "--out", dest], env=cli_env)
    assert r.returncode == 2
    assert {p: p.read_bytes() for p in before} == before  # source tree and outside file untouched
    assert ported(dest / "a.py") and ported(dest / "real.py")
    for name in ("link_out.py", "link_rel_out.py", "link_in.py", "link_abs_in.py"):
        assert (dest / name).is_symlink(), name  # copied as links, never written through
        assert f"{name}:0: is a symbolic link" in r.stderr
    assert no_temp_files(tree, outside, dest)


def test_named_link_file_inside_the_tree_is_ported_outside_refused(tmp_path, cli_env):
    tree, outside = _link_layout(tmp_path)
    r = cli([tree / "link_in.py"], env=cli_env)
    assert r.returncode == 0 and ported(tree / "real.py")
    r = cli([tree / "link_out.py"], env=cli_env)
    assert r.returncode == 2 and "outside" in r.stderr
    assert (outside / "victim.py").read_text() == CUDA_SRC


@needs_root
def test_owner_and_group_are_kept(tmp_path, cli_env):
    f = tmp_path / "owned.py"
    f.write_text(CUDA_SRC)
    os.chown(f, 4321, 8765)
    os.chmod(f, 0o640)
    r = cli([f], env=cli_env)
    assert r.returncode == 0 and ported(f)
    st = f.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 8765, 0o640)


# ---------------------------------------------------------------------------------------------
# An edit made during the run is never lost
# ---------------------------------------------------------------------------------------------

def test_edit_made_after_reading_is_not_overwritten(tmp_path):
    f = tmp_path / "edited.py"
    f.write_text(CUDA_SRC)
    result = migrate_path(f, Options())
    assert result.changed
    f.write_text(CUDA_SRC + "y = 1  # the user's edit\n")
    with pytest.raises(WriteRefused, match="changed since it was read"):
        write_atomic(f, result.new, original=result.original, read_stat=result.read_stat, root=tmp_path)
    assert f.read_text().endswith("# the user's edit\n")
    assert no_temp_files(tmp_path)


def test_same_size_edit_with_old_mtime_is_not_overwritten(tmp_path):
    f = tmp_path / "edited.py"
    f.write_text(CUDA_SRC)
    st = f.stat()
    result = migrate_path(f, Options())
    f.write_text(CUDA_SRC.replace("ones", "rand"))  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: only the bytes tell
    with pytest.raises(WriteRefused):
        write_atomic(f, result.new, original=result.original, read_stat=result.read_stat)
    assert "rand" in f.read_text()


def test_edit_between_check_and_rename_is_not_overwritten(tmp_path, monkeypatch):
    """The last look happens after the temporary file is written, just before the rename."""
    f = tmp_path / "edited.py"
    f.write_text(CUDA_SRC)
    result = migrate_path(f, Options())
    real_fsync = os.fsync

    def fsync_then_edit(fd):
        real_fsync(fd)
        f.write_text("# edited meanwhile\n")

    monkeypatch.setattr(engine.os, "fsync", fsync_then_edit)
    with pytest.raises(WriteRefused):
        write_atomic(f, result.new, original=result.original, read_stat=result.read_stat)
    assert f.read_text() == "# edited meanwhile\n" and no_temp_files(tmp_path)


def test_cli_reports_the_edited_file_and_ports_the_rest(tmp_path, monkeypatch, capsys):
    """End to end in one process: the file changes between analysis and writing."""
    from typer.testing import CliRunner

    from torchdevice_migrate import cli as cli_module

    (tmp_path / "a.py").write_text(CUDA_SRC)
    (tmp_path / "b.py").write_text(CUDA_SRC)
    real_run = cli_module.run

    def run_then_edit(*args, **kwargs):
        summary = real_run(*args, **kwargs)
        (tmp_path / "a.py").write_text("# edited during the run\n")
        return summary

    monkeypatch.setattr(cli_module, "run", run_then_edit)
    r = CliRunner().invoke(cli_module.app, [str(tmp_path), "--no-config"])
    assert r.exit_code == 2, r.output
    assert (tmp_path / "a.py").read_text() == "# edited during the run\n"
    assert ported(tmp_path / "b.py")


# ---------------------------------------------------------------------------------------------
# Tracebacks and hangs become report lines
# ---------------------------------------------------------------------------------------------

def _drop_dac_capabilities():
    """In the child: root without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER obeys permission bits."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2, 3):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@needs_root
def test_read_only_folder_is_reported_and_the_folders_after_it_are_ported(tmp_path, cli_env):
    """Root ignores permission bits: the run drops the capabilities that let it (PermissionError on the
    temporary file, as for a normal user)."""
    for name in ("a", "locked", "z"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.py").write_text(CUDA_SRC)
    os.chmod(tmp_path / "locked", 0o555)
    try:
        try:
            r = subprocess.run([sys.executable, "-m", "torchdevice_migrate", str(tmp_path), "--no-config"],
                               env=cli_env, capture_output=True, text=True, timeout=60,
                               preexec_fn=_drop_dac_capabilities)
        except subprocess.SubprocessError as e:
            pytest.skip(f"cannot drop capabilities here: {e}")
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 2
        assert "locked/m.py:0: cannot write" in r.stderr and "Permission denied" in r.stderr
        assert ported(tmp_path / "a" / "m.py") and ported(tmp_path / "z" / "m.py")
        assert (tmp_path / "locked" / "m.py").read_text() == CUDA_SRC
        assert no_temp_files(tmp_path)
    finally:
        os.chmod(tmp_path / "locked", 0o755)


def _special_files(tree: Path):
    """A FIFO, a socket and a character device named like Python files, and a link to /dev/zero."""
    os.mkfifo(tree / "fifo.py")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "sock.py"))
    made = ["fifo.py", "sock.py"]
    if ROOT:
        os.mknod(tree / "dev.py", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null
        made.append("dev.py")
    (tree / "zero.py").symlink_to("/dev/zero")
    made.append("zero.py")
    return sock, made


def test_special_files_are_skipped_without_opening_them(tmp_path, cli_env):
    (tmp_path / "ok.py").write_text(CUDA_SRC)
    sock, names = _special_files(tmp_path)
    try:
        r = cli([tmp_path], env=cli_env, timeout=60)  # a FIFO that were opened would block forever
    finally:
        sock.close()
    assert r.returncode == 2
    assert ported(tmp_path / "ok.py")
    for name in names:
        assert f"{name}:0: " in r.stderr and "not a regular file" in r.stderr, name
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo.py").st_mode)


def test_read_regular_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "x.py")
    result = migrate_path(tmp_path / "x.py", Options())  # would block forever if opened for reading
    assert result.state is FileState.ERROR and "FIFO" in result.error


def _mkdir_deep(top: Path, levels: int) -> Path:
    path = str(top)
    for _ in range(levels):  # not Path.mkdir(parents=True) / os.makedirs: both recurse
        path += "/d"
        os.mkdir(path)
    return Path(path)


def _remove_tree(top: Path) -> None:
    """Remove a tree of any depth (shutil.rmtree, and pytest's own clean-up, recurse and fail on it)."""
    if subprocess.run(["rm", "-rf", str(top)], capture_output=True).returncode == 0 and not top.exists():
        return
    order, stack = [], [str(top)]
    while stack:
        d = stack.pop()
        order.append(d)
        with os.scandir(d) as it:
            for e in it:
                (stack.append if e.is_dir(follow_symlinks=False) else os.unlink)(e.path)
    for d in reversed(order):
        os.rmdir(d)


@pytest.fixture
def deep_tmp(tmp_path):
    yield tmp_path / "deep"
    if (tmp_path / "deep").exists():
        _remove_tree(tmp_path / "deep")


def test_tree_1100_levels_deep_in_place_and_with_out(deep_tmp, cli_env):
    src = deep_tmp / "src"
    src.mkdir(parents=True)
    deep = _mkdir_deep(src, 1100)
    (deep / "bottom.py").write_text(CUDA_SRC)
    (src / "top.py").write_text(CUDA_SRC)
    assert [p.name for p in discover([src])] == ["top.py", "bottom.py"]
    report = copy_tree(src, deep_tmp / "o")  # --out's copy walks without recursion too
    rel = deep.relative_to(src)
    assert not report.errors and (deep_tmp / "o" / rel / "bottom.py").read_text() == CUDA_SRC
    r = cli([src], env=cli_env)
    assert r.returncode == 0, r.stderr
    assert ported(src / "top.py") and ported(deep / "bottom.py")


def _make_long_path(top: Path) -> Path:
    """Folders whose full path is longer than PATH_MAX (made step by step with dir_fd), a .py at the bottom."""
    name = "n" * 200
    fd = os.open(top, os.O_RDONLY)
    try:
        for _ in range(25):  # 25 * 201 characters > 4096
            os.mkdir(name, dir_fd=fd)
            new = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = new
        out = os.open("deep.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, CUDA_SRC.encode())
        os.close(out)
    finally:
        os.close(fd)
    return top.joinpath(*[name] * 25)


def test_path_longer_than_path_max(tmp_path, cli_env):
    (tmp_path / "top.py").write_text(CUDA_SRC)
    long_dir = _make_long_path(tmp_path)
    assert len(str(long_dir)) > 4096
    r = cli([tmp_path], env=cli_env)
    assert r.returncode == 2
    assert "File name too long" in r.stderr
    assert ported(tmp_path / "top.py")


def test_out_pointing_at_an_existing_file(tmp_path, cli_env):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text(CUDA_SRC)
    (tmp_path / "file").write_text("x")
    r = cli([tmp_path / "src", "--out", tmp_path / "file"], env=cli_env)
    assert r.returncode == 2 and "not a folder" in r.stderr
    assert (tmp_path / "file").read_text() == "x"


def test_out_with_fifo_and_socket_in_the_source(tmp_path, cli_env):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(CUDA_SRC)
    (src / "sub").mkdir()
    (src / "sub" / "b.py").write_text(CUDA_SRC)
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sub" / "sock"))
    try:
        r = cli([src, "--out", tmp_path / "dest"], env=cli_env)
    finally:
        sock.close()
    assert r.returncode == 0, r.stderr
    assert ported(tmp_path / "dest" / "a.py") and ported(tmp_path / "dest" / "sub" / "b.py")
    assert not os.path.lexists(tmp_path / "dest" / "pipe") and not os.path.lexists(tmp_path / "dest" / "sub" / "sock")
    assert "pipe: a FIFO, not a regular file; not copied" in r.stderr


def test_deeply_nested_notebook_json_is_reported_unreadable(tmp_path, cli_env):
    nb = tmp_path / "deep.ipynb"
    nb.write_text('{"cells": [], "cuda": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = migrate_path(nb, Options())
    assert result.state is FileState.ERROR and "nested too deeply" in result.error
    (tmp_path / "ok.py").write_text(CUDA_SRC)
    r = cli([tmp_path], env=cli_env)
    assert r.returncode == 2 and "deep.ipynb:1: cannot read notebook" in r.stderr
    assert ported(tmp_path / "ok.py")


# ---------------------------------------------------------------------------------------------
# Odd file names
# ---------------------------------------------------------------------------------------------

BAD_NAME = b"caf\xe9_\xff.py"


@pytest.mark.parametrize("fmt", FORMATS)
def test_undecodable_file_name_in_every_report_format(tmp_path, cli_env, fmt):
    (tmp_path / os.fsdecode(BAD_NAME)).write_text(CUDA_SRC + "torch.cuda.set_sync_debug_mode(1)\n")
    (tmp_path / os.fsdecode(b"broken_\xfe.py")).write_text("def (:\n  x.cuda()\n")
    r = run_cli([tmp_path, "--report", "--format", fmt, "--no-config"], env=cli_env)
    assert "Traceback" not in r.stderr and "UnicodeEncodeError" not in r.stderr, r.stderr
    assert r.returncode == 2  # the broken file
    shown = json.dumps(json.loads(r.stdout)) if fmt in ("json", "sarif") else r.stdout
    assert any(s in shown for s in ("caf\\xe9_\\xff.py", "caf\\\\xe9_\\\\xff.py", "caf%5Cxe9_%5Cxff.py", "caf&#92;xe9"))


def test_undecodable_file_name_in_place_and_diff(tmp_path, cli_env):
    f = tmp_path / os.fsdecode(BAD_NAME)
    f.write_text(CUDA_SRC)
    r = cli([tmp_path, "--diff"], env=cli_env)
    assert r.returncode == 0 and "+++ b/" in r.stdout and "\\xff" in r.stdout
    r = cli([tmp_path], env=cli_env)
    assert r.returncode == 0 and ported(f)


def test_file_names_ending_in_a_space_are_ported_with_jobs_2(tmp_path, cli_env):
    for i in range(9):
        (tmp_path / f"f{i}.py").write_text(CUDA_SRC)
    (tmp_path / "space .py").write_text(CUDA_SRC)
    (tmp_path / "dir ").mkdir()
    (tmp_path / "dir " / "m.py").write_text(CUDA_SRC)
    named = tmp_path / "named.py "  # not a .py name: ported only when named explicitly
    named.write_text(CUDA_SRC)
    r = cli([tmp_path, named, "--jobs", "2"], env=cli_env)
    assert r.returncode == 0, r.stderr
    for p in [*tmp_path.glob("*.py"), tmp_path / "dir " / "m.py", named]:
        assert ported(p), p


# ---------------------------------------------------------------------------------------------
# Full disk
# ---------------------------------------------------------------------------------------------

def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if not ROOT:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def _big_cuda_source(kib: int) -> str:
    return CUDA_SRC + "".join(f"v{i} = {i}  # padding line for a big file\n" for i in range(kib * 1024 // 40))


def test_full_disk_in_place_on_a_small_tmpfs(tmp_path, cli_env):
    mnt = tmp_path / "mnt"
    if not _tmpfs(mnt, "96k"):
        pytest.skip("cannot mount a tmpfs here; test_full_disk_in_place_simulated covers the same path")
    try:
        (mnt / "a_big.py").write_text(_big_cuda_source(40))  # its port needs 40 KiB more: does not fit
        (mnt / "b_small.py").write_text(CUDA_SRC)
        filler = mnt / "filler.bin"
        with open(filler, "wb") as f:  # leave about 16 KiB free
            f.write(b"\0" * (96 - 40 - 4 - 16 - 8) * 1024)
        big_before = (mnt / "a_big.py").read_bytes()
        r = cli([mnt / "a_big.py", mnt / "b_small.py"], env=cli_env)
        assert r.returncode == 2
        assert "a_big.py:0: cannot write" in r.stderr and "No space left" in r.stderr
        assert (mnt / "a_big.py").read_bytes() == big_before
        assert ported(mnt / "b_small.py")  # attempted after the failure, and it fits
        assert no_temp_files(mnt)
    finally:
        _umount(mnt)


def test_full_disk_in_place_simulated(tmp_path, monkeypatch):
    """ENOSPC from the write of one file: per-file error, no temporary file, the next file still written."""
    from torchdevice_migrate import cli as cli_module

    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(CUDA_SRC)
    b.write_text(CUDA_SRC)
    real_fdopen = os.fdopen

    class FullDisk(io.RawIOBase):
        def __init__(self, fd):
            self.fd = fd

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            os.close(self.fd)
            super().close()

    def fdopen(fd, mode="r", *args, **kwargs):
        if "w" in mode and os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path / ".a.py.")):
            return FullDisk(fd)
        return real_fdopen(fd, mode, *args, **kwargs)

    monkeypatch.setattr(engine.os, "fdopen", fdopen)
    results = [migrate_path(p, Options()) for p in (a, b)]
    for r in results:
        cli_module._write_port(r, [tmp_path], None, set())
    assert results[0].state is FileState.ERROR and "No space left" in results[0].error
    assert a.read_text() == CUDA_SRC and ported(b) and results[1].written
    assert no_temp_files(tmp_path)


def test_full_disk_with_out_leaves_no_truncated_file(tmp_path, cli_env):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / f"m{i}.py").write_text(_big_cuda_source(24))
    (src / "small.py").write_text(CUDA_SRC)
    dest = tmp_path / "dest"
    if not _tmpfs(dest, "64k"):
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = cli([src, "--out", dest], env=cli_env)
        assert r.returncode == 2 and "No space left" in r.stderr
        for p in dest.rglob("*"):
            data, original = p.read_bytes(), (src / p.relative_to(dest)).read_bytes()
            # every file in DEST is whole: the copy of the original or its full port
            # (ported as the CLI ports: with the layout pass, at the default line length)
            port = migrate_source(original, str(p), Options(layout=True)).new
            assert data == original or data == port, p
        assert no_temp_files(dest)
    finally:
        _umount(dest)


def test_copy_tree_failure_removes_the_temporary_file(tmp_path, monkeypatch):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "a.py").write_text(CUDA_SRC)
    (src / "b.py").write_text(CUDA_SRC)

    def copyfileobj(fsrc, fdst, length=0):
        fdst.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(engine.shutil, "copyfileobj", copyfileobj)
    report = copy_tree(src, dest)
    assert [Path(p).name for p, _ in report.errors] == ["a.py", "b.py"]
    assert list(dest.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Signals with --jobs 2 (the parallel runner)
# ---------------------------------------------------------------------------------------------

def _children(pid: int):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return f"{pid} ({cmd}; PPid {fields.get('PPid', '?').strip()}, SigCgt {fields.get('SigCgt', '?').strip()})"
    except OSError:
        return str(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc to find worker processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_with_jobs_2_stops_workers_and_leaves_no_temp_file(tmp_path, cli_env, sig):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(60):
        (src / f"m{i:02}.py").write_text(_big_cuda_source(8))
    log = open(tmp_path / "stderr.txt", "w+")  # not a pipe: workers that outlive the parent must not block us
    proc = subprocess.Popen([sys.executable, "-m", "torchdevice_migrate", str(src), "--jobs", "2", "--no-config"],
                            env=cli_env, stdout=subprocess.DEVNULL, stderr=log)
    workers = []
    for _ in range(600):  # wait (bounded) until the workers exist
        workers = _children(proc.pid)
        if len(workers) >= 2 or proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip("the run ended before the signal could be sent")
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    for _ in range(100):  # workers get a bounded grace period to go
        if not any(_alive(w) for w in workers):
            break
        time.sleep(0.1)
    alive = [w for w in workers if _alive(w)]
    described = [_describe(w) for w in alive]
    for w in alive:
        os.kill(w, signal.SIGKILL)
    log.seek(0)
    stderr = log.read()
    assert not alive, f"worker processes outlived the main process: {described}; its stderr:\n{stderr[-2000:]}"
    assert no_temp_files(src)
    for p in src.glob("*.py"):  # every file original or fully ported
        text = p.read_text()
        assert text == _big_cuda_source(8) or text == migrate_text(_big_cuda_source(8))


_HALF_A_MESSAGE = r"""
import multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from torchdevice_migrate import engine

pool = None

def half_a_message(marker):
    # What a worker killed while it sends a result leaves in the pipe: a header for 1000 bytes, 10 of them.
    os.write(pool._result_queue._writer.fileno(), (1000).to_bytes(4, "big") + b"x" * 10)
    open(marker, "w").close()
    time.sleep(120)

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    pool.submit(half_a_message, sys.argv[1])
    for _ in range(1200):
        if os.path.exists(sys.argv[1]):
            break
        time.sleep(0.05)
    engine._stop(pool)
    print("stopped")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="forks a worker")
def test_stop_does_not_wait_on_a_result_cut_in_half(tmp_path, cli_env):
    """A worker stopped in the middle of sending its result must not keep the run from ending: the
    pool's manager thread would wait for the rest of the message, and the interpreter's exit for it
    (the cause of a SIGTERM test that hung in CI)."""
    script = tmp_path / "half.py"
    script.write_text(_HALF_A_MESSAGE)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "sent")], env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert (tmp_path / "sent").exists(), err
    assert out.strip() == "stopped" and proc.returncode == 0, f"rc {proc.returncode}; stderr:\n{err[-2000:]}"


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs /proc to see worker processes")
def test_a_run_ended_between_two_results_stops_its_workers(tmp_path):
    """Whatever ends a parallel run while it hands out results (here on_result; in the CLI a signal
    that lands outside the engine's own code) stops the workers at once: none is left to finish the
    queued ports, which the interpreter's exit would wait for."""
    for i in range(12):
        (tmp_path / f"m{i:02}.py").write_text(_big_cuda_source(8))
    files = sorted(tmp_path.glob("*.py"))

    def stop(result):
        raise KeyboardInterrupt

    before = set(_children(os.getpid()))  # (processes other tests left, such as a resource tracker)
    try:
        engine.run(files, Options(), jobs=2, on_result=stop)
    except KeyboardInterrupt:
        # Looked at while the exception (and with it the run's frame) is alive, as when SystemExit
        # unwinds to the interpreter's exit. (A worker's status is read from /proc: the pool's own
        # thread may be reaping it at this moment, when multiprocessing reports it alive.)
        workers = [w for w in _children(os.getpid()) if w not in before]
        for _ in range(100):  # a bounded grace period: the workers were told to stop
            if not any(_alive(w) for w in workers):
                break
            time.sleep(0.1)
        alive = [w for w in workers if _alive(w)]
    else:
        pytest.fail("on_result's exception did not end the run")
    assert alive == []


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------

def _finding(path: str, original: str, **kw) -> Finding:
    return Finding(path=path, line=1, column=1, api="torch.cuda.x", status=FindingStatus.REVIEW, code="TDM201",
                   message=kw.get("message", "m"), original=original, hint=kw.get("hint", ""))


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_neutralises_formula_cells(start):
    payload = f"{start}HYPERLINK(\"http://evil\")"
    result = FileResult(f"{start}x.py", FileState.UNCHANGED,
                        findings=[_finding(f"{start}x.py", payload, message=payload, hint=payload)])
    rows = list(csv.DictReader(io.StringIO(to_csv(build_report([result])), newline="")))
    assert len(rows) == 1
    for key in ("path", "original", "message", "hint"):
        assert rows[0][key] == "'" + (f"{start}x.py" if key == "path" else payload), key
    assert rows[0]["line"] == "1"  # numbers are not touched


def test_csv_report_of_a_file_named_like_a_formula(tmp_path, cli_env):
    (tmp_path / "=cmd.py").write_text(CUDA_SRC)
    r = cli([".", "--report", "--format", "csv", "--no-config"], cwd=tmp_path, env=cli_env)
    rows = list(csv.DictReader(io.StringIO(r.stdout, newline="")))
    assert rows and all(row["path"] == "'=cmd.py" for row in rows)


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_file_has_the_bytes_stdout_shows(tmp_path, fmt, monkeypatch):
    from typer.testing import CliRunner

    from torchdevice_migrate import cli as cli_module

    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text(CUDA_SRC + "torch.cuda.set_sync_debug_mode(1)\nm = torch.load('x.pt')\n")
    (src / "=b.py").write_text("s = torch.cuda.Stream()\nx = 'é'\n")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r1 = runner.invoke(cli_module.app, ["src", "--report", "--format", fmt, "--no-config"])
    r2 = runner.invoke(cli_module.app, ["src", "--report", "--format", fmt, "--no-config", "-o", "rep.out"])
    assert r1.exit_code == r2.exit_code == 0, r1.output
    assert r1.stdout_bytes and (tmp_path / "rep.out").read_bytes() == r1.stdout_bytes


# ---------------------------------------------------------------------------------------------
# Output that does not compile
# ---------------------------------------------------------------------------------------------

CONTINUATIONS = [
    "import torch\nx = torch.zeros(2).cuda() + \\\n    y\n",
    "import torch\na = 1 + \\\n    2\nb = t.cuda()\n",
    "import torch\nb = t.cuda()\na = 1 + \\\n    2\n",
    "import torch\nm = model.cuda(); \\\n  other = 2\n",
    "import torch\nx = t.cuda() \\\n    .float()\n",
    "import torch\nwith torch.cuda.device(0), \\\n     open(f) as g:\n    pass\n",
    "import torch\nassert torch.cuda.is_available(), \\\n    'need gpu'\n",
    "import torch, \\\n    os\nx = t.cuda()\n",
    "import torch\nckpt = torch.load('a.pt') \\\n  ['state']\nm.cuda()\n",
]


@pytest.mark.parametrize("source", CONTINUATIONS)
def test_backslash_continuation_lines_without_cuda_are_kept(source):
    out = migrate_text(source)
    compile(out, "<port>", "exec")
    old_lines = source.splitlines()
    new_lines = out.splitlines()
    for line in old_lines:
        if "cuda" not in line and "torch.load" not in line and line.strip():
            assert line in new_lines, (line, out)


NOT_COMPILING = {
    "null_byte.py": b"import torch\nx = t.cuda()\ny = '\x00'\n",
    "nested.py": b"import torch\nx = t.cuda()\ny = " + b"(" * 1000 + b"1" + b")" * 1000 + b"\n",
}


@pytest.mark.parametrize("name", sorted(NOT_COMPILING))
def test_file_that_does_not_compile_is_left_untouched_and_reported(tmp_path, cli_env, name):
    f = tmp_path / name
    f.write_bytes(NOT_COMPILING[name])
    (tmp_path / "ok.py").write_text(CUDA_SRC)
    r = cli([tmp_path], env=cli_env)
    assert r.returncode == 2 and f"{name}:3: the file does not compile" in r.stderr
    assert f.read_bytes() == NOT_COMPILING[name]
    assert ported(tmp_path / "ok.py")


@pytest.mark.parametrize("name", sorted(NOT_COMPILING))
def test_notebook_cell_that_does_not_compile_is_left_untouched(tmp_path, name):
    code = NOT_COMPILING[name].decode()
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None}
    nb = {"cells": [dict(cell, source="import torch\n"), dict(cell, source=code)],
          "metadata": {"kernelspec": {"language": "python", "name": "python3", "display_name": "Python 3"}},
          "nbformat": 4, "nbformat_minor": 5}
    f = tmp_path / "n.ipynb"
    f.write_text(json.dumps(nb))
    before = f.read_bytes()
    result = migrate_path(f, Options())
    assert result.state is FileState.ERROR, result.new
    assert result.error.startswith(f"{f}[cell 2]:3: the file does not compile"), result.error  # the line that fails
    assert f.read_bytes() == before
