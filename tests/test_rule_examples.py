"""Each rule's VALID and INVALID examples are its documentation; here they are its tests."""

import pytest

from torchdevice_migrate.rules import ALL_RULES
from torchdevice_migrate.transform import migrate_text

VALID = [(r.name, code) for r in ALL_RULES for code in r.VALID]
INVALID = [(r.name, before, after) for r in ALL_RULES for before, after in r.INVALID]


def test_every_rule_has_examples():
    for rule in ALL_RULES:
        assert rule.name, rule
        assert rule.INVALID, f"{rule.__name__} has no INVALID examples"
        assert rule.VALID, f"{rule.__name__} has no VALID examples"


@pytest.mark.parametrize("rule,code", VALID)
def test_valid_left_alone(rule, code):
    assert migrate_text(code) == code


@pytest.mark.parametrize("rule,before,after", INVALID)
def test_invalid_rewritten(rule, before, after):
    got = migrate_text(before)
    assert got == after
    assert migrate_text(got) == got
    compile(got, "<example>", "exec")
