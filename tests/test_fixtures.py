"""Golden fixtures: ``fixtures/<family>/<case>.py`` ports to ``<case>.expected.py``.

Cases are found automatically. Every case is also checked for idempotency (porting the expected
output changes nothing) and that its output compiles. An optional ``<case>.findings`` file lists the
expected findings, one ``line:column CODE status`` per line, so reason codes are fixtures too.

Per target (issue 11): ``<case>.torch.expected.py`` (and optionally ``<case>.torch.findings``) is the
expected output of the same input with ``--target torch``. Every case's torch-target output compiles
and adds no import but torch and the standard library.
"""

from pathlib import Path

import pytest

from torchdevice_migrate.options import Options
from torchdevice_migrate.transform import migrate_source

from .conftest import FIXTURES
from .torch_only import added_foreign_imports

CASES = sorted(
    p for p in FIXTURES.glob("*/*.py")
    if not p.name.endswith(".expected.py") and p.parent.name != "projects"
)


def _id(p: Path) -> str:
    return f"{p.parent.name}/{p.stem}"


def test_fixtures_exist():
    assert len(CASES) >= 5


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_fixture(case: Path):
    expected_path = case.with_name(case.stem + ".expected.py")
    assert expected_path.exists(), f"missing {expected_path.name}"
    source, expected = case.read_bytes(), expected_path.read_bytes()
    result = migrate_source(source, str(case))
    assert result.new.decode() == expected.decode()
    # idempotent: a second run changes nothing
    assert migrate_source(result.new, str(case)).new == result.new
    compile(result.new, str(expected_path), "exec")
    _check_findings(case.with_name(case.stem + ".findings"), result)


def _check_findings(findings_path: Path, result) -> None:
    if findings_path.exists():
        want = [line.strip() for line in findings_path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        got = [f"{f.line}:{f.column} {f.code} {f.status.value}" for f in result.findings]
        assert got == want


TORCH = Options(target="torch")
TORCH_CASES = [c for c in CASES if c.with_name(c.stem + ".torch.expected.py").exists()]


def test_some_fixtures_have_a_torch_golden():
    assert len(TORCH_CASES) >= 1, "add <case>.torch.expected.py goldens (--target torch) next to <case>.expected.py"


@pytest.mark.parametrize("case", TORCH_CASES, ids=_id)
def test_fixture_torch_target(case: Path):
    expected_path = case.with_name(case.stem + ".torch.expected.py")
    result = migrate_source(case.read_bytes(), str(case), TORCH)
    assert result.new.decode() == expected_path.read_text()
    assert migrate_source(result.new, str(case), TORCH).new == result.new
    compile(result.new, str(expected_path), "exec")
    assert not added_foreign_imports(case.read_text(), result.new.decode())
    _check_findings(case.with_name(case.stem + ".torch.findings"), result)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_torch_target_output_needs_torch_alone(case: Path):
    """Every fixture ported with ``--target torch`` compiles and imports nothing new but torch/stdlib."""
    source = case.read_bytes()
    result = migrate_source(source, str(case), TORCH)
    compile(result.new, str(case), "exec")
    assert not added_foreign_imports(source.decode(), result.new.decode())


UNCHANGED = [c for c in CASES if c.with_name(c.stem + ".expected.py").read_bytes() == c.read_bytes()]


def test_some_fixtures_are_left_alone():
    assert UNCHANGED, "keep cases whose expected output is the input: they prove what must not change"


@pytest.mark.parametrize("case", UNCHANGED, ids=_id)
def test_unchanged_fixture_is_byte_identical(case: Path):
    assert migrate_source(case.read_bytes(), str(case)).new == case.read_bytes()
    if case not in TORCH_CASES:  # a torch golden states otherwise where the torch target can port more
        assert migrate_source(case.read_bytes(), str(case), TORCH).new == case.read_bytes()
