"""Rule families. Each module holds one small rule class; ``ALL_RULES`` is the order they run in.

Where is X handled? ``torchdevice_migrate/registry.py`` says, for every CUDA API, which rule
module ports it (``Api.rule``), or why it is left alone.
"""

from __future__ import annotations

from typing import List, Type

from .base import Rule
from .device_comparisons import DeviceComparisons
from .device_placement import DevicePlacement
from .device_strings import DeviceStrings
from .registry_renames import RegistryRenames

ALL_RULES: List[Type[Rule]] = [
    RegistryRenames,
    DeviceStrings,
    DevicePlacement,
    DeviceComparisons,
]

__all__ = ["ALL_RULES", "Rule"]
