"""Config mappings: merged (later layers winning) and flattened to dotted keys."""
from __future__ import annotations

import copy
import json
from typing import Any


def deep_merge(base: dict, overlay: dict) -> dict:
    """Recursive dict merge; a ``None`` in the overlay is kept (it switches a feature off)."""
    merged = copy.deepcopy(base)
    _merge_into(merged, overlay)
    return merged


def _merge_into(target: dict, overlay: dict) -> None:
    """The overlay's values copied into ``target`` (already a copy: nothing is copied twice)."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become JSON strings (MLflow params, assumptions)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return flat
