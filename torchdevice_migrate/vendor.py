"""``--vendor PATH``: copy the runtime shim into the user's tree as one module.

The shim's source is found with ``importlib.util.find_spec`` and read as text; it is never
imported here (importing it imports torch, and the codemod never imports torch).

Where the module goes and how migrated code imports it:

* ``PATH`` is a folder relative to the project root (the one folder given on the command line;
  with ``--out``, the port's root). The shim is written to ``PATH/runtime_shim.py``.
* The import path is ``PATH`` relative to the root, dotted: ``--vendor mypkg/_vendor`` gives
  ``from mypkg._vendor import runtime_shim``; ``--vendor .`` gives ``import runtime_shim``.
* If ``PATH``'s parent is a regular package (has ``__init__.py``), an empty ``PATH/__init__.py``
  is created when missing, so the vendored folder is a regular subpackage and packaging tools
  (setuptools ``find_packages``) ship it. A top-level folder (``third_party``) gets no
  ``__init__.py``: it is imported as a namespace package from the project root, like the scripts
  next to it.
* The vendored file starts with :data:`MARKER`. torchdevice-migrate never ports a file that starts
  with it (porting the shim would turn its own ``torch.cuda`` calls into calls to itself), and
  ``--vendor`` overwrites such a file (an update) but refuses to overwrite any other file.
"""

from __future__ import annotations

import importlib.util
import keyword
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from . import __version__

SHIM_PACKAGE = "runtime_shim"
MARKER = b"# vendored by torchdevice-migrate"
HEADER = (f"{MARKER.decode()} {__version__} from the runtime_shim package: do not edit, do not port.\n"
          f"# Update it with: torchdevice-migrate ROOT --vendor PATH\n")


class VendorError(Exception):
    """``--vendor`` cannot be done as asked; the message says why."""


def is_vendored_shim(source: bytes) -> bool:
    """Whether ``source`` is a shim written by ``--vendor`` (such files are never ported)."""
    return source.startswith(MARKER)


def shim_source_file() -> Path:
    """The runtime shim's source file, located without importing it."""
    spec = importlib.util.find_spec(SHIM_PACKAGE)
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin)
    # Some editable installs report the package as a namespace; its folder still holds __init__.py.
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        init = Path(folder) / "__init__.py"
        if init.is_file():
            return init
    raise VendorError("cannot find the runtime_shim source; reinstall torchdevice-migrate")


def shim_import_root() -> Path:
    """The folder that makes ``import runtime_shim`` work (the parent of the package)."""
    origin = shim_source_file()
    return origin.parent.parent if origin.name == "__init__.py" else origin.parent


def module_for(vendor_dir: Path, root: Path) -> str:
    """The import path of ``vendor_dir/runtime_shim.py`` for code run from ``root``."""
    try:
        rel = vendor_dir.resolve().relative_to(root.resolve())
    except ValueError:
        raise VendorError(f"--vendor {vendor_dir}: must be inside the project root {root}") from None
    parts = [p for p in rel.parts if p not in ("", ".")]
    for part in parts:
        if not part.isidentifier() or keyword.iskeyword(part):
            raise VendorError(f"--vendor {vendor_dir}: {part!r} is not a valid Python package name")
    return ".".join(parts + [SHIM_PACKAGE])


def resolve(vendor: Path, root: Path) -> Path:
    """``vendor`` as given (relative to ``root`` unless absolute), as a path under ``root``."""
    return vendor if vendor.is_absolute() else root / vendor


@dataclass
class Vendored:
    path: Path  # the shim module written
    module: str  # its import path
    created_init: Optional[Path] = None


def vendor_shim(vendor_dir: Path, root: Path) -> Vendored:
    """Write the shim to ``vendor_dir/runtime_shim.py`` (see the module docstring for the rules)."""
    module = module_for(vendor_dir, root)
    target = vendor_dir / f"{SHIM_PACKAGE}.py"
    if target.exists() and not is_vendored_shim(target.read_bytes()):
        raise VendorError(f"--vendor: {target} exists and was not written by torchdevice-migrate; not overwriting it")
    source = shim_source_file().read_bytes()
    vendor_dir.mkdir(parents=True, exist_ok=True)
    created = None
    init = vendor_dir / "__init__.py"
    if vendor_dir.resolve() != root.resolve() and (vendor_dir.parent / "__init__.py").is_file() and not init.exists():
        init.write_bytes(b"")
        created = init
    target.write_bytes(HEADER.encode() + source)
    return Vendored(target, module, created)


@dataclass
class VendorPlan:
    """Where ``--vendor`` will write the shim, and the import path migrated code uses for it."""

    dir: Path
    root: Path
    module: str

    def write(self) -> Vendored:
        return vendor_shim(self.dir, self.root)


def plan(vendor: Path, paths: Sequence[Path], out: Optional[Path], shim_module: Optional[str] = None) -> VendorPlan:
    """Check ``--vendor PATH`` against the other arguments before anything is written.

    ``PATH`` is relative to the project root: the one folder given, or with ``--out`` the port
    (DEST); an absolute ``PATH`` must lie inside the root (with ``--out``, inside the source
    folder, which is then mapped into DEST, or inside DEST).
    """
    if shim_module is not None:
        raise VendorError("--vendor sets the shim's import path itself; drop --shim-module")
    if len(paths) != 1 or not paths[0].is_dir():
        raise VendorError("--vendor takes exactly one project folder (its root is where imports start)")
    source = paths[0]
    root = out if out is not None else source
    if vendor.is_absolute():
        rel = None
        for base in ([source, out] if out is not None else [source]):
            try:
                rel = vendor.resolve().relative_to(base.resolve())
                break
            except ValueError:
                continue
        if rel is None:
            raise VendorError(f"--vendor {vendor}: must be inside the project folder {source}")
    else:
        rel = vendor
    module = module_for(root / rel, root)
    existing = source / rel / f"{SHIM_PACKAGE}.py"
    if existing.is_file() and not is_vendored_shim(existing.read_bytes()):
        raise VendorError(f"--vendor: {existing} exists and was not written by torchdevice-migrate; not overwriting it")
    if (source / rel).exists() and not (source / rel).is_dir():
        raise VendorError(f"--vendor {vendor}: not a folder")
    return VendorPlan(root / rel, root, module)
