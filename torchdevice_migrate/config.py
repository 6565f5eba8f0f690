"""Configuration: the ``[tool.torchdevice-migrate]`` table of ``pyproject.toml``, merged with the command line.

The table is looked for by walking up from each path given on the command line: the nearest
``pyproject.toml`` that contains the table wins (files without the table are passed over).
Command-line flags override the keys they name (``--exclude`` adds to ``exclude``). See
``docs/configuration.md``.

Keys:

* ``exclude``: list of globs, matched against each file's and folder's name and against its path
  relative to the folder that holds the ``pyproject.toml``;
* ``select``: list of reason-code prefixes (``"TDM1"``, ``"TDM201"``): only those codes are
  rewritten or reported;
* ``ignore``: list of reason codes (or prefixes) that are neither rewritten nor reported;
* ``shim-module``: import path of the runtime shim in migrated code (default ``runtime_shim``);
* ``target``: ``"shim"`` (default: portable everywhere through the runtime shim) or ``"torch"`` (torch's
  own API only, for upstream pull requests); see ``docs/targets.md``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set

from .options import DEFAULT_SHIM_MODULE, DEFAULT_TARGET, TARGETS, Options  # no LibCST: see options.py
from .registry import REASONS

TABLE = "torchdevice-migrate"
KEYS = ("exclude", "select", "ignore", "shim-module", "target")
_TABLE_RE = re.compile(r"^\s*\[\s*tool\s*\.\s*[\"']?torchdevice-migrate", re.MULTILINE)
_CODE_PREFIX_RE = re.compile(r"TDM\d{0,3}")
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class ConfigError(Exception):
    """A configuration file or flag that cannot be used; the message says which and why."""


@dataclass
class Settings:
    """The effective settings of one run (configuration file merged with the command line)."""

    source: Optional[Path] = None  # the pyproject.toml used, if any
    exclude: List[str] = field(default_factory=list)  # from the file: relative to ``source``'s folder
    cli_exclude: List[str] = field(default_factory=list)  # from --exclude: matched as the engine does
    select: Optional[List[str]] = None
    ignore: List[str] = field(default_factory=list)
    shim_module: str = DEFAULT_SHIM_MODULE
    target: str = DEFAULT_TARGET
    #: The project's own style (``project_style``): line length and formatter.
    style: Style = field(default_factory=lambda: Style())

    @property
    def root(self) -> Optional[Path]:
        return self.source.parent if self.source is not None else None

    def options(self) -> Options:
        """The transform options: ``select`` as prefixes, ``ignore`` expanded to the codes it names."""
        select_names, select_codes = _split_rule_names(self.select or ())
        ignore_names, ignore_codes = _split_rule_names(self.ignore)
        rules = None
        if select_names or ignore_names:  # rule names: run those rules only / all but those
            from .rules import ALL_RULES

            rules = [r for r in ALL_RULES
                     if (not select_names or r.name in select_names) and r.name not in ignore_names]
        select = None if self.select is None or (select_names and not select_codes) else set(select_codes)
        return Options(shim_module=self.shim_module, target=self.target, select=select,
                       ignore=expand_codes(ignore_codes), rules=rules, layout=True,
                       line_length=self.style.line_length)

    def excluded(self, path: Path) -> bool:
        """True when ``path`` matches an ``exclude`` glob of the configuration file."""
        if not self.exclude or self.root is None:
            return False
        try:
            rel = Path(_absolute(path)).relative_to(_absolute(self.root))
        except ValueError:
            rel = None
        candidates: Set[str] = {path.name}
        if rel is not None:
            parts = rel.parts
            for i in range(1, len(parts) + 1):
                candidates.add("/".join(parts[:i]))  # the path and every folder above it
                candidates.add(parts[i - 1])  # every folder's name
        return any(fnmatch.fnmatchcase(c, pattern.rstrip("/")) or fnmatch.fnmatchcase(c, pattern.rstrip("/") + "/*")
                   for c in candidates for pattern in self.exclude)

    def describe(self) -> Dict[str, Any]:
        """What the report shows under ``config``."""
        return {
            "source": str(self.source) if self.source is not None else None,
            "exclude": list(self.exclude) + list(self.cli_exclude),
            "select": list(self.select) if self.select is not None else None,
            "ignore": list(self.ignore),
            "shim_module": self.shim_module,
            "target": self.target,
        }


def _absolute(path: Path) -> str:
    return os.path.abspath(path)


def expand_codes(items: Iterable[str]) -> Set[str]:
    """``TDM3`` -> every known TDM3xx code; full codes stay as they are."""
    out: Set[str] = set()
    for item in items:
        matches = {c for c in REASONS if c.startswith(item)}
        out |= matches or {item}
    return out


def _toml():
    """``tomllib`` (3.11+), else ``tomli`` if installed, else None."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:  # pragma: no cover - exercised on Python 3.9/3.10 only
        import tomli

        return tomli
    except ImportError:
        return None


def _mentions_table(text: str) -> bool:
    return TABLE in text and _TABLE_RE.search(text) is not None


def read_table(path: Path, required: bool = False) -> Optional[Dict[str, Any]]:
    """The ``[tool.torchdevice-migrate]`` table of ``path`` (None if absent and not ``required``).

    A ``pyproject.toml`` met while walking up that cannot be parsed is passed over unless it names
    the table; without a TOML parser, only files that name the table are an error.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        if required:
            raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
        return None
    text = raw.decode("utf-8", errors="replace")
    toml = _toml()
    if toml is None:
        if required or _mentions_table(text):
            raise ConfigError(f"{path}: reading [tool.{TABLE}] needs Python 3.11 or the 'tomli' package "
                              f"(pip install tomli), or pass --no-config")
        return None
    try:
        data = toml.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, toml.TOMLDecodeError) as e:
        if required or TABLE in text:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
        return None
    tool = data.get("tool")
    table = tool.get(TABLE) if isinstance(tool, dict) else None
    if table is None:
        if required:
            raise ConfigError(f"{path}: no [tool.{TABLE}] table")
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.{TABLE}] must be a table")
    return table


def find_config(paths: Sequence[Path]) -> Optional[Path]:
    """The nearest ``pyproject.toml`` with the table above the paths given (one file for all of them)."""
    found: Dict[Path, Optional[Path]] = {}
    for p in paths:
        start = Path(_absolute(p))
        if not start.is_dir():
            start = start.parent
        found[p] = next((c for c in (d / "pyproject.toml" for d in (start, *start.parents))
                         if c.is_file() and read_table(c) is not None), None)
    distinct = {v for v in found.values()}
    if len(distinct) > 1:
        listing = ", ".join(f"{p} -> {v if v is not None else 'none'}" for p, v in found.items())
        raise ConfigError(f"the paths given have different configurations ({listing}); "
                          f"run them separately, or choose one with --config FILE or none with --no-config")
    return distinct.pop() if distinct else None


def _str_list(table: Dict[str, Any], key: str, source: Path) -> Optional[List[str]]:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: [tool.{TABLE}] {key} must be a list of strings")
    return list(value)


_RULE_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def rule_names() -> List[str]:
    """The ``Rule.name`` of every rule (imports the rules, so only asked when a name is given)."""
    from .rules import ALL_RULES

    return sorted(r.name for r in ALL_RULES)


def _check_codes(values: Iterable[str], what: str) -> List[str]:
    """Reason codes or prefixes (``TDM1``, ``TDM201``), upper-cased, and rule names (``checkpoints``)."""
    out = []
    for raw in values:
        for item in (s.strip() for s in raw.split(",")):
            if not item:
                continue
            if _RULE_NAME_RE.fullmatch(item) and not item.lower().startswith("tdm"):
                if item not in rule_names():
                    raise ConfigError(f"{what}: {item!r} is not a rule name (rules: {', '.join(rule_names())})")
                out.append(item)
                continue
            v = item.upper()
            if not _CODE_PREFIX_RE.fullmatch(v) or not any(c.startswith(v) for c in REASONS):
                known = ", ".join(sorted(REASONS))
                raise ConfigError(f"{what}: {v!r} is not a reason code, prefix or rule name (known codes: {known})")
            out.append(v)
    return out


def _split_rule_names(items: Iterable[str]) -> tuple[List[str], List[str]]:
    """(rule names, codes) of a checked ``select``/``ignore`` list."""
    names = [i for i in items if not i.startswith("TDM")]
    return names, [i for i in items if i.startswith("TDM")]


def _check_module(value: str, what: str) -> str:
    if not _MODULE_RE.fullmatch(value):
        raise ConfigError(f"{what}: {value!r} is not an importable module path")
    return value


def _check_target(value: Any, what: str) -> str:
    if value not in TARGETS:
        raise ConfigError(f"{what}: {value!r} is not a target (choose one of {', '.join(TARGETS)})")
    return value


def load_settings(
    paths: Sequence[Path],
    *,
    config: Optional[Path] = None,
    no_config: bool = False,
    exclude: Optional[Sequence[str]] = None,
    select: Optional[Sequence[str]] = None,
    ignore: Optional[Sequence[str]] = None,
    shim_module: Optional[str] = None,
    target: Optional[str] = None,
) -> Settings:
    """Settings for a run: the configuration file (``config``, else found above ``paths``), then the flags.

    ``select``, ``ignore``, ``shim_module`` and ``target`` given on the command line replace the file's keys;
    ``exclude`` globs are added to the file's. ``None`` (or empty) means "not given".
    ``select``/``ignore`` items may be comma-separated.
    """
    settings = Settings()
    if config is not None and no_config:
        raise ConfigError("--config and --no-config cannot be combined")
    source = None
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"--config {config}: no such file")
        source = config
    elif not no_config:
        source = find_config(paths)
    if source is not None:
        table = read_table(source, required=config is not None) or {}
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) in [tool.{TABLE}]: {', '.join(unknown)} "
                              f"(known: {', '.join(KEYS)})")
        settings.source = source
        settings.exclude = _str_list(table, "exclude", source) or []
        sel = _str_list(table, "select", source)
        settings.select = _check_codes(sel, f"{source}: select") if sel is not None else None
        settings.ignore = _check_codes(_str_list(table, "ignore", source) or [], f"{source}: ignore")
        if "shim-module" in table:
            if not isinstance(table["shim-module"], str):
                raise ConfigError(f"{source}: [tool.{TABLE}] shim-module must be a string")
            settings.shim_module = _check_module(table["shim-module"], f"{source}: shim-module")
        if "target" in table:
            settings.target = _check_target(table["target"], f"{source}: [tool.{TABLE}] target")
    if exclude:  # added to the file's globs: a flag never brings back what the project excluded
        settings.cli_exclude = list(exclude)
    if select:
        settings.select = _check_codes(select, "--select")
    if ignore:
        settings.ignore = _check_codes(ignore, "--ignore")
    if shim_module is not None:
        settings.shim_module = _check_module(shim_module, "--shim-module")
    if target is not None:
        settings.target = _check_target(target, "--target")
    settings.style = project_style(paths)
    return settings


# The project's own style (issue 11 item 3): the line length a changed line is kept within
# (``layout.py``) and the formatter ``--reformat`` runs on the changed statements (``formatting.py``).

DEFAULT_LINE_LENGTH = 88
_PRE_COMMIT = (".pre-commit-config.yaml", ".pre-commit-config.yml")
_PRE_COMMIT_HOOK_RE = re.compile(r"^\s*-?\s*(?:id|repo)\s*:\s*['\"]?(\S*?)['\"]?\s*$", re.MULTILINE)


@dataclass
class Style:
    """``line_length``: ``[tool.ruff]``/``ruff.toml``/``.ruff.toml`` ``line-length``, else ``[tool.black]``
    ``line-length``, else 88 (both tools' default). ``formatter``: ``"ruff"`` when the project configures
    ruff (a ruff table or file, or a ruff hook in ``.pre-commit-config.yaml``), else ``"black"`` when it
    configures black (``[tool.black]`` or a black hook), else None. ``source``: the files that said so."""

    line_length: int = DEFAULT_LINE_LENGTH
    formatter: Optional[str] = None
    sources: List[str] = field(default_factory=list)


def _read_toml(path: Path) -> Optional[Dict[str, Any]]:
    toml = _toml()
    if toml is None:
        return None
    try:
        return toml.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, toml.TOMLDecodeError):
        return None


def _line_length(table: Any) -> Optional[int]:
    value = table.get("line-length") if isinstance(table, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _pre_commit_formatter(folder: Path) -> Optional[str]:
    """``"ruff"``/``"black"`` when a pre-commit hook of the folder formats with it (ruff first)."""
    for name in _PRE_COMMIT:
        try:
            text = (folder / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        hooks = " ".join(_PRE_COMMIT_HOOK_RE.findall(text))
        if re.search(r"ruff-format|\bruff\b|ruff-pre-commit", hooks):
            return "ruff"
        if re.search(r"\bblack\b", hooks):
            return "black"
    return None


def project_style(paths: Sequence[Path]) -> Style:
    """The style of the project holding ``paths`` (the first path that finds one), walking up from it.

    In each folder, as ruff looks for its settings: ``.ruff.toml``, then ``ruff.toml``, then
    ``pyproject.toml`` (``[tool.ruff]``, then ``[tool.black]``); the nearest folder with any wins. A
    ``.pre-commit-config.yaml`` met on the way (or in that folder) names the formatter when no table did."""
    for p in paths:
        start = Path(_absolute(p))
        if not start.is_dir():
            start = start.parent
        style = Style()
        for folder in (start, *start.parents):
            found = False
            for name in (".ruff.toml", "ruff.toml"):
                if (folder / name).is_file():
                    data = _read_toml(folder / name) or {}
                    style.formatter = "ruff"
                    style.line_length = _line_length(data) or DEFAULT_LINE_LENGTH
                    style.sources.append(str(folder / name))
                    found = True
                    break
            pyproject = folder / "pyproject.toml"
            if not found and pyproject.is_file():
                tool = (_read_toml(pyproject) or {}).get("tool")
                tool = tool if isinstance(tool, dict) else {}
                if "ruff" in tool:
                    style.formatter = "ruff"
                    style.line_length = _line_length(tool["ruff"]) or DEFAULT_LINE_LENGTH
                    found = True
                elif "black" in tool:
                    style.formatter = "black"
                    style.line_length = _line_length(tool["black"]) or DEFAULT_LINE_LENGTH
                    found = True
                if found:
                    style.sources.append(str(pyproject))
            hook = _pre_commit_formatter(folder)
            if hook is not None and style.formatter is None:
                style.formatter = hook
                style.sources.append(str(folder / _PRE_COMMIT[0]))
            if found or (folder / ".git").exists():
                break  # the project's root: nothing above it is the project's
        if style.sources:
            return style
    return Style()
