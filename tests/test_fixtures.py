"""Golden fixtures: ``fixtures/<family>/<case>.py`` ports to ``<case>.expected.py``.

Cases are found automatically. Every case is also checked for idempotency (porting the expected
output changes nothing) and that its output compiles. An optional ``<case>.findings`` file lists the
expected findings, one ``line:column CODE status`` per line, so reason codes are fixtures too.
"""

from pathlib import Path

import pytest

from torchdevice_migrate.transform import migrate_source

from .conftest import FIXTURES

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
    findings_path = case.with_name(case.stem + ".findings")
    if findings_path.exists():
        want = [line.strip() for line in findings_path.read_text().splitlines() if line.strip() and not line.startswith("#")]
        got = [f"{f.line}:{f.column} {f.code} {f.status.value}" for f in result.findings]
        assert got == want


UNCHANGED = [c for c in CASES if c.with_name(c.stem + ".expected.py").read_bytes() == c.read_bytes()]


def test_some_fixtures_are_left_alone():
    assert UNCHANGED, "keep cases whose expected output is the input: they prove what must not change"


@pytest.mark.parametrize("case", UNCHANGED, ids=_id)
def test_unchanged_fixture_is_byte_identical(case: Path):
    assert migrate_source(case.read_bytes(), str(case)).new == case.read_bytes()
