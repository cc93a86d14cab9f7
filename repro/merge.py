"""Recursive merge of config mappings, later layers winning."""
from __future__ import annotations

import copy


def deep_merge(base: dict, overlay: dict) -> dict:
    """Recursive dict merge; a ``None`` in the overlay is kept (it switches a feature off)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
