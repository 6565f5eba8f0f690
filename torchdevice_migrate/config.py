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

    @property
    def root(self) -> Optional[Path]:
        return self.source.parent if self.source is not None else None

    def options(self) -> Options:
        """The transform options: ``select`` as prefixes, ``ignore`` expanded to the codes it names."""
        return Options(shim_module=self.shim_module, target=self.target,
                       select=set(self.select) if self.select is not None else None,
                       ignore=expand_codes(self.ignore))

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


def _check_codes(values: Iterable[str], what: str) -> List[str]:
    out = []
    for raw in values:
        for v in (s.strip().upper() for s in raw.split(",")):
            if not v:
                continue
            if not _CODE_PREFIX_RE.fullmatch(v) or not any(c.startswith(v) for c in REASONS):
                known = ", ".join(sorted(REASONS))
                raise ConfigError(f"{what}: {v!r} is not a reason code or prefix (known codes: {known})")
            out.append(v)
    return out


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
    return settings
