"""The registry is the matcher, and the tests prove it (issue 13, "Tests that cannot pass vacuously").

* Every REWRITTEN registry entry is exercised: some golden fixture (all rules, default target) or some
  rule example (its rule alone, the pre-filter bypassed) reports a finding whose ``api`` is that entry.
* Every finding's ``api`` is a registry key.
* Mutation: with any single REWRITTEN entry disabled (``registry.lookup`` no longer knows it), some
  fixture or example that passes today fails. An entry that survives is ported by a rule that does not
  ask the registry (a parallel table), or is exercised nowhere. Only the fixtures and examples that
  mention the entry's last name are run for it (a use of ``torch.cuda.memory.memory_allocated`` names
  ``memory_allocated``), and each entry stops at its first failing one. It takes ~50 s, so the normal
  suite skips it; ``.ci/mutation`` runs it (``TDM_MUTATION=1``) and ``.ci/run`` runs that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Callable, List, Optional, Tuple

import pytest

from torchdevice_migrate import registry
from torchdevice_migrate.options import Options
from torchdevice_migrate.registry import Status
from torchdevice_migrate.rules import ALL_RULES
from torchdevice_migrate.rules.base import Example
from torchdevice_migrate.transform import migrate_source

from .conftest import FIXTURES, REPO

REWRITTEN = [a for a in registry.entries() if a.status is Status.REWRITTEN]


@dataclass
class Item:
    """One fixture or example: how to run it, and what passing means (its own test's assertions)."""

    name: str
    source: str
    run: Callable[[], object]
    expected: str
    codes: Optional[Tuple[str, ...]]  # examples: the stated codes (a multiset); fixtures: None
    findings: Optional[List[str]]  # fixtures: the ``.findings`` lines, when the case has the file

    def result(self):
        try:
            return self.run()
        except Exception:  # noqa: BLE001 - a crash fails the item (its own test shows the error)
            return None

    def passes(self, result=None) -> bool:
        result = result if result is not None else self.result()
        if result is None or result.new.decode() != self.expected:
            return False
        if self.codes is not None and Counter(f.code for f in result.findings) != Counter(self.codes):
            return False
        if self.findings is not None:
            got = [f"{f.line}:{f.column} {f.code} {f.status.value}" for f in result.findings]
            if got != self.findings:
                return False
        return True


def _fixture_items() -> List[Item]:
    items = []
    for case in sorted(FIXTURES.glob("*/*.py")):
        if case.name.endswith(".expected.py") or case.parent.name == "projects":
            continue
        expected = case.with_name(case.stem + ".expected.py")
        if not expected.exists():
            continue
        findings_path = case.with_name(case.stem + ".findings")
        findings = None
        if findings_path.exists():
            findings = [line.strip() for line in findings_path.read_text().splitlines()
                        if line.strip() and not line.startswith("#")]
        source = case.read_bytes()
        items.append(Item(f"fixture {case.parent.name}/{case.stem}", source.decode(),
                          lambda s=source, p=str(case): migrate_source(s, p), expected.read_text(), None, findings))
    return items


def _run_example(source: str, options: Optional[Options]):
    if options is None:
        return migrate_source(source.encode(), "<example>")
    return migrate_source(source.encode(), "<example>", options, prefilter=False)


def _example_items() -> List[Item]:
    items = []
    for rule in ALL_RULES:
        options = Options(rules=[rule])
        for i, item in enumerate(rule.INVALID):
            ex = Example.of(item)
            # The old form (no codes) is tested with all rules; the new one with the rule alone.
            run = partial(_run_example, ex.before, None if ex.codes is None else options)
            items.append(Item(f"{rule.name} INVALID[{i}]", ex.before, run, ex.after, ex.codes, None))
        for i, (code, codes) in enumerate(getattr(rule, "REPORTS", ())):
            items.append(Item(f"{rule.name} REPORTS[{i}]", code, partial(_run_example, code, options),
                              code, tuple(codes), None))
    return items


@pytest.fixture(scope="module")
def corpus():
    """Every item with its result today; ``passing`` are those whose own test passes today."""
    items = _fixture_items() + _example_items()
    results = [(item, item.result()) for item in items]
    passing = [item for item, result in results if result is not None and item.passes(result)]
    return results, passing


def _last_name(api: registry.Api) -> str:
    name = api.name.split(":", 1)[-1].strip("'\"")
    return name.rsplit(".", 1)[-1]


def test_every_rewritten_entry_is_exercised(corpus):
    results, _ = corpus
    seen = {f.api for _, result in results if result is not None for f in result.findings}
    missing = [a.name for a in REWRITTEN if a.name not in seen]
    assert not missing, (f"{len(missing)} REWRITTEN entries are exercised by no fixture or rule example "
                         f"(no finding with that api): {missing}")


def test_every_finding_api_is_a_registry_key(corpus):
    results, _ = corpus
    unknown = sorted({f"{f.api} ({item.name})" for item, result in results if result is not None
                      for f in result.findings if registry.lookup(f.api) is None})
    assert not unknown, f"findings whose api is no registry key: {unknown}"


def survivors(passing: List[Item]) -> List[str]:
    """The REWRITTEN entries whose removal from the registry makes no passing item fail.

    First in this process (the entry deleted from ``registry.API``: what ``lookup`` answers at run
    time); an entry that survives that is tried again in a fresh interpreter where it is deleted
    before the rules, the trigger and the targets are imported, so tables they derive from the
    registry at import (``HANDLES``, name sets, the trigger's patterns) lose it too."""
    left = []
    for api in REWRITTEN:
        word = _last_name(api)
        candidates = [item for item in passing if word in item.source]
        del registry.API[api.name]
        try:
            killed = any(not item.passes() for item in candidates)
        finally:
            registry.API[api.name] = api
        if not killed:
            left.append(api.name)
    return [name for name in left if not _killed_in_fresh_process(name, [i.name for i in passing])]


_FRESH = """
import json, sys
data = json.load(sys.stdin)
from torchdevice_migrate import registry
api = registry.API.pop(data["entry"])
from tests import test_registry_coverage as t
items = {i.name: i for i in t._fixture_items() + t._example_items()}
word = t._last_name(api)
print(json.dumps(any(not items[n].passes() for n in data["passing"] if n in items and word in items[n].source)))
"""


def _killed_in_fresh_process(entry: str, passing: List[str]) -> bool:
    out = subprocess.run([sys.executable, "-c", _FRESH], input=json.dumps({"entry": entry, "passing": passing}),
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    if out.returncode != 0:
        return True  # the tool no longer imports or runs without the entry: that fails the suite
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.environ.get("TDM_MUTATION"),
                    reason="the mutation check takes ~50 s: .ci/mutation runs it (TDM_MUTATION=1), and .ci/run runs that")
def test_disabling_any_rewritten_entry_fails_a_test(corpus):
    _, passing = corpus
    left = survivors(passing)
    assert not left, (f"{len(left)} of {len(REWRITTEN)} REWRITTEN entries survive their removal from the "
                      f"registry (no fixture or example fails): {left}")


def test_mutation_check_can_fail(corpus):
    """The check itself is not vacuous: a registry with the entry present passes every item it ran."""
    _, passing = corpus
    assert passing, "no fixture or example passes today"
    assert all(item.passes() for item in passing[:20])
