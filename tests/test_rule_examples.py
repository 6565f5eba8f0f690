"""Each rule's VALID, INVALID and REPORTS examples are its documentation; here they are its unit tests.

Every example runs with its rule ALONE and the byte pre-filter bypassed (``rules.base.Rule`` states the
format), so an example proves what that rule does, not what the other rules or the pre-filter do.
"""

from __future__ import annotations

from collections import Counter

import pytest

from torchdevice_migrate.options import Options
from torchdevice_migrate.rules import ALL_RULES
from torchdevice_migrate.rules.base import Example
from torchdevice_migrate.transform import migrate_source, migrate_text

from .torch_only import added_foreign_imports

VALID = [pytest.param(r, code, id=f"{r.name}-{i}") for r in ALL_RULES for i, code in enumerate(r.VALID)]
INVALID = [pytest.param(r, Example.of(item), id=f"{r.name}-{i}") for r in ALL_RULES
           for i, item in enumerate(r.INVALID)]
REPORTS = [pytest.param(r, code, tuple(codes), id=f"{r.name}-{i}") for r in ALL_RULES
           for i, (code, codes) in enumerate(getattr(r, "REPORTS", ()))]

def alone(rule, source: str, target: str = "shim"):
    """``source`` migrated by ``rule`` alone, the pre-filter bypassed."""
    return migrate_source(source.encode(), "<example>", Options(rules=[rule], target=target), prefilter=False)


def codes_of(migration) -> Counter:
    return Counter(f.code for f in migration.findings)


def test_every_rule_has_examples():
    for rule in ALL_RULES:
        assert rule.name, rule
        assert rule.INVALID or getattr(rule, "REPORTS", ()), f"{rule.__name__} has no INVALID or REPORTS examples"
        assert rule.VALID, f"{rule.__name__} has no VALID examples"


def test_rule_names_are_unique():
    names = [r.name for r in ALL_RULES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("rule,code", VALID)
def test_valid_left_alone_silently(rule, code):
    result = alone(rule, code)
    assert result.new.decode() == code
    assert not result.findings, "a VALID example reports nothing; put a reported one in REPORTS"
    # With every rule (and the pre-filter) it is left alone too.
    assert migrate_text(code) == code


@pytest.mark.parametrize("rule,code,codes", REPORTS)
def test_reports_left_alone_and_reported(rule, code, codes):
    assert codes, "a REPORTS example states the codes it reports"
    result = alone(rule, code)
    assert result.new.decode() == code
    assert codes_of(result) == Counter(codes)


@pytest.mark.parametrize("rule,ex", INVALID)
def test_invalid_rewritten(rule, ex: Example):
    assert ex.before != ex.after, "an INVALID example changes something"
    assert ex.codes is not None, "an INVALID example states its reason codes: (before, after, codes)"
    result = alone(rule, ex.before)
    got = result.new.decode()
    assert got == ex.after
    assert codes_of(result) == Counter(ex.codes)
    assert ex.codes, "a rewrite is reported"
    assert alone(rule, got).new.decode() == got, "not idempotent"
    compile(got, "<example>", "exec")


@pytest.mark.parametrize("rule,ex", INVALID)
def test_invalid_under_torch_target(rule, ex: Example):
    """``--target torch``: the output compiles and adds no import but torch and the standard library."""
    result = alone(rule, ex.before, target="torch")
    got = result.new.decode()
    compile(got, "<example>", "exec")
    if ex.torch is not None:
        assert got == ex.torch
        want = ex.torch_codes if ex.torch_codes is not None else ex.codes
        assert codes_of(result) == Counter(want)
    foreign = added_foreign_imports(ex.before, got)
    assert not foreign, f"--target torch output imports {foreign}"


@pytest.mark.parametrize("rule,code", VALID)
def test_valid_left_alone_under_torch_target(rule, code):
    assert alone(rule, code, target="torch").new.decode() == code


@pytest.mark.parametrize("rule,code,codes", REPORTS)
def test_reports_left_alone_under_torch_target(rule, code, codes):
    assert alone(rule, code, target="torch").new.decode() == code
