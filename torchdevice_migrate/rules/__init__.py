"""Rule families. Each module holds one small rule class; ``ALL_RULES`` is the order they run in.

Where is X handled? ``torchdevice_migrate/registry.py`` says, for every CUDA API, which rule
module ports it (``Api.rule``), or why it is left alone.

A rule module dropped into this package is found and run (``discover_rules``); list it in
``ORDERED`` only if it must run at a particular point.

Order: ``RegistryRenames`` first (pure renames of references); then the rules that replace a whole
call or statement (AMP, attention, legacy tensor types, distributed, tensor methods), so that they
see calls before the device rules touch their arguments; then the device rules; last, ``Unsupported``, which only reports.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable, List, Type

from .amp import Amp
from .attention import Attention
from .base import Rule
from .checkpoints import Checkpoints
from .device_comparisons import DeviceComparisons
from .device_placement import DevicePlacement
from .device_strings import DeviceStrings
from .distributed import Distributed
from .legacy_tensors import LegacyTensors
from .registry_renames import RegistryRenames
from .tensor_methods import TensorMethods
from .unsupported import Unsupported

#: The rules whose order matters (see above).
ORDERED: List[Type[Rule]] = [
    RegistryRenames,
    Amp,
    Attention,
    LegacyTensors,
    Distributed,
    TensorMethods,
    DeviceStrings,
    DevicePlacement,
    DeviceComparisons,
    Checkpoints,
    Unsupported,
]


def discover_rules(package: str, path: Iterable[str], known: Iterable[Type[Rule]]) -> List[Type[Rule]]:
    """The rule classes defined in the modules of ``package`` (at ``path``) that ``known`` does not
    list, in module-name order: a new rule module needs no line in this file."""
    seen = set(known)
    out: List[Type[Rule]] = []
    for info in sorted(pkgutil.iter_modules(list(path)), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Rule) and obj.__module__ == module.__name__
                    and obj.name and obj not in seen):
                seen.add(obj)
                out.append(obj)
    return out


#: The order the rules run in: ``ORDERED``, with the rules of any other module of this package
#: (a new rule) run after the device rules and before ``Unsupported``, which only reports.
ALL_RULES: List[Type[Rule]] = [*ORDERED[:-1], *discover_rules(__name__, __path__, ORDERED), ORDERED[-1]]

__all__ = ["ALL_RULES", "Rule"]
