"""The engine: byte-faithful reading and writing, errors reported, imports scheduled safely."""

import os
import stat
from pathlib import Path

import pytest

from torchdevice_migrate.engine import discover, migrate_path, write_atomic
from torchdevice_migrate.findings import FileState
from torchdevice_migrate.transform import Options, SourceError, migrate_source, migrate_text

CUDA_LINE = b"x = y.cuda()\n"


def test_bom_and_crlf_are_kept():
    src = b"\xef\xbb\xbfimport torch\r\n" + CUDA_LINE.replace(b"\n", b"\r\n")
    out = migrate_source(src).new
    assert out.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in out and b"\n" not in out.replace(b"\r\n", b"")
    assert b"runtime_shim.to_device(y)" in out


def test_encoding_declaration_is_kept():
    src = "# -*- coding: latin-1 -*-\nname = 'caf\xe9'\nx = y.cuda()\n".encode("latin-1")
    out = migrate_source(src).new
    assert out.startswith(b"# -*- coding: latin-1 -*-\n")
    assert "caf\xe9".encode("latin-1") in out
    out.decode("latin-1")


def test_trailing_whitespace_at_end_of_file_round_trips():
    src = b"import torch\nx = y.cuda()\n\t\n  "
    out = migrate_source(src).new
    assert out.endswith(b"\n\t\n  ")
    assert b"runtime_shim.to_device(y)" in out


def test_file_without_cuda_is_byte_identical():
    src = b"import torch\n\n\nx = torch.ones(2)  # not on a gpu\n"
    assert migrate_source(src).new == src


def test_syntax_error_is_reported_with_line():
    with pytest.raises(SourceError) as e:
        migrate_source(b"import torch\nx = y.cuda(\n\ndef f(:\n")
    assert e.value.line >= 2
    assert "syntax" in e.value.reason


def test_bad_file_result_is_error_and_untouched(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"x = y.cuda(\n")
    result = migrate_path(bad, Options())
    assert result.state is FileState.ERROR
    assert result.error.startswith(f"{bad}:")
    assert bad.read_bytes() == b"x = y.cuda(\n"


def test_undecodable_file_is_error(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"x = '\xff\xfe'\ny = z.cuda()\n")
    result = migrate_path(bad, Options())
    assert result.state is FileState.ERROR


def test_atomic_write_keeps_mode(tmp_path: Path):
    f = tmp_path / "script.py"
    f.write_bytes(b"old")
    os.chmod(f, 0o751)
    write_atomic(f, b"new")
    assert f.read_bytes() == b"new"
    assert stat.S_IMODE(f.stat().st_mode) == 0o751
    assert [p.name for p in tmp_path.iterdir()] == ["script.py"]


def test_atomic_write_through_symlink_keeps_link(tmp_path: Path):
    real = tmp_path / "real.py"
    real.write_bytes(b"old")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_import_is_not_shadowing_an_existing_name():
    out = migrate_text("runtime_shim = 3\nx = y.cuda()\n")
    assert "import runtime_shim as _runtime_shim" in out
    assert "x = _runtime_shim.to_device(y)" in out
    assert "runtime_shim = 3" in out


def test_import_reused_on_second_run():
    once = migrate_text("import torch\nx = y.cuda()\n")
    twice = migrate_text(once + "z = w.cuda()\n")
    assert twice.count("import runtime_shim") == 1
    assert "z = runtime_shim.to_device(w)" in twice


def test_vendored_shim_module_import():
    out = migrate_text("x = y.cuda()\n", Options(shim_module="mypkg._vendor.runtime_shim"))
    assert "from mypkg._vendor import runtime_shim" in out
    assert "x = runtime_shim.to_device(y)" in out


def test_future_import_stays_first():
    out = migrate_text('"""Doc."""\nfrom __future__ import annotations\nx = y.cuda()\n')
    lines = out.splitlines()
    assert lines[0] == '"""Doc."""' and lines[1] == "from __future__ import annotations"


def test_unused_from_import_removed_after_rename():
    out = migrate_text("from torch.cuda import synchronize, Stream\nsynchronize()\ns = Stream\n")
    assert "from torch.cuda" not in out
    assert "runtime_shim.synchronize()" in out and "s = runtime_shim.Stream" in out


def test_from_import_kept_while_still_used():
    out = migrate_text("from torch.cuda import synchronize, FooBar\nsynchronize()\ns = FooBar\n")
    assert "from torch.cuda import FooBar\n" in out


def test_suppression_comment():
    src = "x = y.cuda()  # torchdevice: ignore\nz = w.cuda()  # torchdevice: ignore[TDM999]\n"
    out = migrate_text(src)
    assert "x = y.cuda()  # torchdevice: ignore" in out
    assert "z = runtime_shim.to_device(w)" in out


def test_discover_skips_venvs_and_caches(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("")
    for d in (".git", "__pycache__", "build", "dist", "node_modules", "myenv"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "b.py").write_text("")
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("")
    (tmp_path / "pkg" / "skip_me.py").write_text("")
    found = [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path], excludes=["*/skip_me.py"])]
    assert found == ["pkg/a.py"]


def test_run_falls_back_to_one_process_when_workers_cannot_start(tmp_path: Path, monkeypatch):
    from torchdevice_migrate import engine

    files = []
    for i in range(3):
        f = tmp_path / f"m{i}.py"
        f.write_bytes(CUDA_LINE)
        files.append(f)

    def no_workers(*args, **kwargs):
        raise OSError("no /dev/shm here")

    monkeypatch.setattr(engine, "ProcessPoolExecutor", no_workers)
    summary = engine.run(files, Options(), jobs=2)
    assert [r.path for r in summary.results] == [str(f) for f in files]
    assert all(r.state is FileState.CHANGED for r in summary.results)


# ---- reliability (issue 14): the write path and discovery ---------------------------------------

def test_write_refuses_a_link_out_of_the_root(tmp_path: Path):
    from torchdevice_migrate.engine import WriteRefused

    (tmp_path / "tree").mkdir()
    outside = tmp_path / "outside.py"
    outside.write_bytes(b"old")
    link = tmp_path / "tree" / "link.py"
    link.symlink_to(outside)
    with pytest.raises(WriteRefused, match="outside"):
        write_atomic(link, b"new", root=tmp_path / "tree")
    assert outside.read_bytes() == b"old" and link.is_symlink()
    with pytest.raises(WriteRefused, match="symbolic link"):  # --out: never through a link at all
        write_atomic(link, b"new", root=tmp_path, follow_links=False)
    assert outside.read_bytes() == b"old"


def test_write_refuses_a_file_removed_since_it_was_read(tmp_path: Path):
    from torchdevice_migrate.engine import WriteRefused

    f = tmp_path / "gone.py"
    with pytest.raises(WriteRefused, match="removed"):
        write_atomic(f, b"new", original=b"old", read_stat=(3, 0))
    assert not f.exists() and list(tmp_path.iterdir()) == []


def test_discover_reports_a_folder_it_cannot_list_and_goes_on(tmp_path: Path, monkeypatch):
    from torchdevice_migrate import engine

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.py").write_text("x = 1\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y.py").write_text("y = 1\n")
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("/a"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(engine.os, "scandir", scandir)
    errors = []
    assert [p.name for p in discover([tmp_path], errors=errors)] == ["y.py"]
    assert len(errors) == 1 and errors[0].state is FileState.ERROR and "cannot list folder" in errors[0].error


def test_discover_does_not_follow_links_to_folders(tmp_path: Path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "m.py").write_text("x = 1\n")
    (tmp_path / "loop").symlink_to(tmp_path)  # a cycle: would never end if followed
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert [p.relative_to(tmp_path).as_posix() for p in discover([tmp_path])] == ["real/m.py"]
