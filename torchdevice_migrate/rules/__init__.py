"""Rule families. Each module holds one small rule class; ``ALL_RULES`` is the order they run in.

Where is X handled? ``torchdevice_migrate/registry.py`` says, for every CUDA API, which rule
module ports it (``Api.rule``), or why it is left alone.

Order: ``RegistryRenames`` first (pure renames of references); then the rules that replace a whole
call or statement (AMP, attention, legacy tensor types, distributed, tensor methods), so that they
see calls before the device rules touch their arguments; then the device rules; last, ``Unsupported``, which only reports.
"""

from __future__ import annotations

from typing import List, Type

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

ALL_RULES: List[Type[Rule]] = [
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

__all__ = ["ALL_RULES", "Rule"]
