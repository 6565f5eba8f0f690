"""A new rule is its module, its registry entries and a fixture (issue 13): no list to extend.

``rules.discover_rules`` finds the rule classes of a package's modules that the ordered list does not
name; ``ALL_RULES`` runs them after the device rules, before ``Unsupported``."""

from __future__ import annotations

import sys
import textwrap

from torchdevice_migrate import rules
from torchdevice_migrate.rules.base import Rule


def test_a_rule_module_in_the_package_is_found(tmp_path, monkeypatch):
    pkg = tmp_path / "tdm_fake_rules"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("from torchdevice_migrate.rules.base import Rule\n\nclass Abstract(Rule):\n    name = 'x'\n")
    (pkg / "zeta.py").write_text(textwrap.dedent("""
        from torchdevice_migrate.rules.base import Rule
        from torchdevice_migrate.rules.amp import Amp  # imported, not defined here: not this module's rule

        class Helper:
            pass

        class Unnamed(Rule):
            pass

        class Zeta(Rule):
            name = "zeta"
    """))
    (pkg / "alpha.py").write_text("from torchdevice_migrate.rules.base import Rule\n\nclass Alpha(Rule):\n    name = 'alpha'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = rules.discover_rules("tdm_fake_rules", [str(pkg)], known=[])
        assert [r.name for r in found] == ["alpha", "zeta"]
        alpha = found[0]
        assert rules.discover_rules("tdm_fake_rules", [str(pkg)], known=[alpha]) == found[1:]
    finally:
        for name in [m for m in sys.modules if m.startswith("tdm_fake_rules")]:
            del sys.modules[name]


def test_every_rule_class_of_the_package_runs_once_and_unsupported_last():
    assert rules.ALL_RULES[-1].name == "unsupported"
    assert len(set(rules.ALL_RULES)) == len(rules.ALL_RULES)
    defined = {obj for module in list(sys.modules.values())
               if getattr(module, "__name__", "").startswith("torchdevice_migrate.rules.")
               for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, Rule) and obj.name and obj.__module__ == module.__name__}
    assert defined == set(rules.ALL_RULES)
