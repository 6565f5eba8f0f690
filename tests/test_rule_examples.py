"""Each rule's VALID and INVALID examples are its documentation; here they are its tests."""

import pytest

from torchdevice_migrate.rules import ALL_RULES
from torchdevice_migrate.transform import migrate_source, migrate_text

VALID = [(r.name, code) for r in ALL_RULES for code in r.VALID]
INVALID = [(r.name, before, after) for r in ALL_RULES for before, after in r.INVALID]
# Report-only rules document themselves with REPORTS: (code, [reason codes it must report]).
REPORTS = [(r.name, code, codes) for r in ALL_RULES for code, codes in getattr(r, "REPORTS", ())]


def test_every_rule_has_examples():
    for rule in ALL_RULES:
        assert rule.name, rule
        assert rule.INVALID or getattr(rule, "REPORTS", ()), f"{rule.__name__} has no INVALID or REPORTS examples"
        assert rule.VALID, f"{rule.__name__} has no VALID examples"


@pytest.mark.parametrize("rule,code,codes", REPORTS)
def test_reports_left_alone_and_reported(rule, code, codes):
    result = migrate_source(code.encode())
    assert result.new.decode() == code
    assert sorted(f.code for f in result.findings) == sorted(codes)


@pytest.mark.parametrize("rule,code", VALID)
def test_valid_left_alone(rule, code):
    assert migrate_text(code) == code


@pytest.mark.parametrize("rule,before,after", INVALID)
def test_invalid_rewritten(rule, before, after):
    got = migrate_text(before)
    assert got == after
    assert migrate_text(got) == got
    compile(got, "<example>", "exec")
