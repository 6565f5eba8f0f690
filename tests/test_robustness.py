"""Corpus-sweep findings whose root cause is outside the rules (see fixtures/robustness for the rest)."""

import pytest

from torchdevice_migrate.transform import SourceError, migrate_source


def test_file_without_cuda_use_that_libcst_cannot_round_trip_is_not_an_error():
    # `device=0` only passes the cheap trigger; os.mknod is not a torch call, nothing is rewritten.
    source = b"import os\ntry:\n    pass\nexcept OSError :\n    pass\nos.mknod(p, device=0)\n"
    assert migrate_source(source).new == source


def test_file_libcst_cannot_round_trip_is_refused_when_a_rewrite_is_needed():
    source = b"import torch\ntry:\n    pass\nexcept OSError :\n    pass\nx = y.cuda()\n"
    with pytest.raises(SourceError, match="byte for byte"):
        migrate_source(source)


def test_port_that_only_newer_python_could_compile_is_refused():
    """LibCST accepts 3.12 f-string syntax; on an older Python the port must not be written."""
    import sys

    if sys.version_info >= (3, 12):
        pytest.skip("this Python compiles nested same-quote f-strings")
    from torchdevice_migrate.transform import _compiles

    assert not _compiles(b'x = f"{"a"}"\n', "<test>")
    assert _compiles(b"x = f'{1}'\n", "<test>")
