"""``[tool.torchdevice-migrate]`` in pyproject.toml: discovery, validation, flags overriding it, every mode."""

import json
import sys
from pathlib import Path

import pytest

from torchdevice_migrate import config as config_mod
from torchdevice_migrate.config import ConfigError, find_config, load_settings

from .conftest import run_cli

CUDA_SRC = "import torch\n\nx = torch.ones(2).cuda()\nnames = ['cuda', 'cpu']\n"


def project(root: Path, table: str = "") -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "a.py").write_text(CUDA_SRC)
    (root / "src" / "legacy").mkdir()
    (root / "src" / "legacy" / "old.py").write_text(CUDA_SRC)
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n\n' + table)
    return root


TABLE = """[tool.torchdevice-migrate]
exclude = ["src/legacy"]
select = ["TDM1", "TDM3"]
ignore = ["TDM301"]
shim-module = "mypkg.compat.shim"
"""


def test_found_by_walking_up_skipping_files_without_the_table(tmp_path):
    root = project(tmp_path, TABLE)
    (root / "src" / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    assert find_config([root / "src" / "pkg" / "a.py"]) == root / "pyproject.toml"
    assert find_config([root / "src" / "pkg", root / "src" / "legacy"]) == root / "pyproject.toml"
    s = load_settings([root / "src"])
    assert s.source == root / "pyproject.toml"
    assert s.exclude == ["src/legacy"] and s.select == ["TDM1", "TDM3"] and s.ignore == ["TDM301"]
    assert s.shim_module == "mypkg.compat.shim"
    opts = s.options()
    assert opts.select == {"TDM1", "TDM3"} and opts.ignore == {"TDM301"} and opts.shim_module == "mypkg.compat.shim"
    assert s.excluded(root / "src" / "legacy" / "old.py") and not s.excluded(root / "src" / "pkg" / "a.py")


def test_nearest_table_wins_and_no_table_means_defaults(tmp_path):
    root = project(tmp_path, TABLE)
    (root / "src" / "pkg" / "pyproject.toml").write_text('[tool."torchdevice-migrate"]\nignore = ["TDM3"]\n')
    s = load_settings([root / "src" / "pkg" / "a.py"])
    assert s.source == root / "src" / "pkg" / "pyproject.toml"
    assert s.select is None and s.shim_module == "runtime_shim"
    assert "TDM301" in s.options().ignore and "TDM302" in s.options().ignore  # prefixes expand
    bare = tmp_path / "bare"
    bare.mkdir()
    assert load_settings([bare]).source is None or load_settings([bare]).source.parent != bare


def test_different_configurations_for_the_paths_is_an_error(tmp_path):
    a = project(tmp_path / "a", TABLE)
    b = project(tmp_path / "b", '[tool.torchdevice-migrate]\nignore = ["TDM301"]\n')
    with pytest.raises(ConfigError, match="different configurations"):
        load_settings([a / "src", b / "src"])
    s = load_settings([a / "src", b / "src"], config=b / "pyproject.toml")
    assert s.source == b / "pyproject.toml"


@pytest.mark.parametrize("table, message", [
    ('[tool.torchdevice-migrate]\nexlude = ["x"]\n', "unknown key"),
    ('[tool.torchdevice-migrate]\nexclude = "x"\n', "list of strings"),
    ('[tool.torchdevice-migrate]\nselect = ["TDM9"]\n', "not a reason code"),
    ('[tool.torchdevice-migrate]\nignore = ["E501"]\n', "not a reason code"),
    ('[tool.torchdevice-migrate]\nshim-module = "not a module"\n', "not an importable module"),
    ('[tool.torchdevice-migrate]\nshim-module = 3\n', "must be a string"),
    ('[tool.torchdevice-migrate\nexclude = []\n', "invalid TOML"),
])
def test_bad_configuration_is_a_clear_error(tmp_path, table, message):
    root = project(tmp_path, table)
    with pytest.raises(ConfigError, match=message):
        load_settings([root / "src"])


def test_flags_override_the_file(tmp_path):
    root = project(tmp_path, TABLE)
    s = load_settings([root / "src"], select=["TDM2,TDM101"], ignore=["TDM303"], shim_module="other_shim",
                      exclude=["*.pyi"])
    assert s.select == ["TDM2", "TDM101"] and s.ignore == ["TDM303"] and s.shim_module == "other_shim"
    assert s.exclude == ["src/legacy"] and s.cli_exclude == ["*.pyi"]  # --exclude adds
    assert load_settings([root / "src"], no_config=True).source is None
    with pytest.raises(ConfigError):
        load_settings([root / "src"], select=["nope"])
    with pytest.raises(ConfigError):
        load_settings([root / "src"], config=root / "missing.toml")
    with pytest.raises(ConfigError, match="no \\[tool.torchdevice-migrate\\] table"):
        (root / "other.toml").write_text("[tool.x]\n")
        load_settings([root / "src"], config=root / "other.toml")


def test_without_a_toml_parser_the_error_says_what_to_do(tmp_path, monkeypatch):
    root = project(tmp_path, TABLE)
    monkeypatch.setattr(sys, "version_info", (3, 10, 0, "final", 0))
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(ConfigError, match="tomli"):
        load_settings([root / "src"])
    # A project without the table never needs the parser.
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    assert load_settings([root / "src"]).source is None
    assert config_mod.TABLE == "torchdevice-migrate"


# ---- every mode honours the file the same way -------------------------------------------------

def test_every_mode_honours_the_configuration(tmp_path, cli_env):
    root = project(tmp_path, TABLE)
    a, old = root / "src" / "pkg" / "a.py", root / "src" / "legacy" / "old.py"

    rep = run_cli([root / "src", "--report", "--format", "json"], env=cli_env, cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert data["config"]["source"] == str(root / "pyproject.toml")
    assert data["summary"]["files_scanned"] == 1  # src/legacy excluded
    assert [f["code"] for f in data["findings"]] == ["TDM101"]  # TDM301 ignored

    diff = run_cli([root / "src", "--diff"], env=cli_env, cwd=tmp_path)
    assert diff.returncode == 0 and "old.py" not in diff.stdout
    assert "+from mypkg.compat import shim" in diff.stdout and "+x = shim.to_device(torch.ones(2))" in diff.stdout
    assert "TDM301" not in diff.stderr

    check = run_cli([root / "src", "--check"], env=cli_env, cwd=tmp_path)
    assert check.returncode == 1 and "1 file(s) scanned, 1 would change" in check.stderr

    w = run_cli([root / "src"], env=cli_env, cwd=tmp_path)
    assert w.returncode == 0, w.stderr
    assert "from mypkg.compat import shim" in a.read_text() and old.read_text() == CUDA_SRC


def test_command_line_flags_override_in_the_cli(tmp_path, cli_env):
    root = project(tmp_path, TABLE)
    r = run_cli([root / "src", "--report", "--format", "json", "--select", "TDM3", "--ignore", "TDM302",
                 "--shim-module", "rs"], env=cli_env)
    data = json.loads(r.stdout)
    assert data["config"]["select"] == ["TDM3"] and data["config"]["shim_module"] == "rs"
    assert [f["code"] for f in data["findings"]] == ["TDM301"]
    r = run_cli([root / "src", "--report", "--format", "json", "--no-config"], env=cli_env)
    data = json.loads(r.stdout)
    assert data["summary"]["files_scanned"] == 2 and data["config"]["source"] is None
    r = run_cli([root / "src", "--exclude", "pkg", "--diff"], env=cli_env)
    assert r.returncode == 0 and r.stdout == ""  # config excludes legacy, the flag adds pkg
    (root / "pyproject.toml").write_text('[tool.torchdevice-migrate]\nbogus = 1\n')
    r = run_cli([root / "src", "--diff"], env=cli_env)
    assert r.returncode == 2 and "unknown key" in r.stderr


def test_rules_are_selected_and_ignored_by_name(tmp_path):
    """``--select``/``--ignore`` take a rule's ``name`` too (issue 13): that rule alone / every other rule."""
    from torchdevice_migrate.transform import migrate_source

    source = b'import torch\nx = torch.zeros(2).cuda()\nsd = torch.load("ckpt.pt")\n'
    root = project(tmp_path, "")
    only = load_settings([root / "src"], no_config=True, select=["checkpoints"]).options()
    assert [r.name for r in only.rules] == ["checkpoints"] and only.select is None
    out = migrate_source(source, "a.py", only)
    assert {f.code for f in out.findings} == {"TDM116"} and b".cuda()" in out.new  # .cuda() left alone
    rest = load_settings([root / "src"], no_config=True, ignore=["checkpoints"]).options()
    assert "checkpoints" not in {r.name for r in rest.rules} and len(rest.rules) > 1
    out = migrate_source(source, "a.py", rest)
    assert "TDM116" not in {f.code for f in out.findings} and b".cuda()" not in out.new
    mixed = load_settings([root / "src"], no_config=True, select=["device-placement,TDM1"]).options()
    assert [r.name for r in mixed.rules] == ["device-placement"] and mixed.select == {"TDM1"}
    with pytest.raises(ConfigError, match="not a rule name"):
        load_settings([root / "src"], no_config=True, select=["no-such-rule"])
