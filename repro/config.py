"""Resolve a table row + profile + seed into one concrete config with a stable hash.

Layers, later ones winning: the task's defaults, the table's ``base``, the row's ``spec``,
the task's profile overlay, the table's own profile overlay, then the run identity
(paper, table, row, profile, seed). ``paper`` has no overlay: it is the recipe as written;
``structure`` takes the paper's config too, and measures the model instead of training it.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .errors import ReproError
from .plugins import Row, Table
from .tasks import get_task

PROFILES = ("smoke", "proxy", "paper", "structure")


def deep_merge(base: dict, overlay: dict) -> dict:
    """Recursive dict merge; a ``None`` in the overlay is kept (it switches a feature off)."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class RunConfig:
    config: dict
    hash: str
    assumptions: dict[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> dict:
        return self.config["run"]


def resolve(table: Table, row: Row, profile: str, seed: int) -> RunConfig:
    if profile not in PROFILES:
        raise ReproError(f"unknown profile '{profile}': choose from {', '.join(PROFILES)}")
    if not row.runnable:
        raise ReproError(f"row '{row.id}' of {table.paper_id} table {table.id} is not runnable: {row.not_runnable_reason}")
    task = get_task(table.task)
    config = deep_merge(task.defaults, table.base)
    config = deep_merge(config, row.spec)
    if profile in task.profiles:
        config = deep_merge(config, task.profiles[profile])
    config = deep_merge(config, table.profiles.get(profile, {}))
    config["task"] = table.task
    config["run"] = {"paper": table.paper_id, "table": table.id, "row": row.id, "profile": profile, "seed": int(seed)}
    task.finalize(config)
    distill = config.get("train", {}).get("distill")
    if distill:
        # The teacher is another row of this table, trained once (seed 0) and reused; its hash is
        # part of the student's config so a changed teacher means a new student run.
        teacher = table.row(distill["teacher"])
        if teacher.spec.get("train", {}).get("distill"):
            raise ReproError(f"row '{row.id}' distills from '{teacher.id}', which itself distills: chains are not supported")
        distill["teacher_hash"] = resolve(table, teacher, profile, distill.get("teacher_seed", 0)).hash
    flat = flatten(config)
    notes = {**task.assumptions, **table.assumptions}
    if profile in task.profiles:  # a value the profile replaces is no longer the paper's assumption
        replaced = set(flatten(deep_merge(task.profiles[profile], table.profiles.get(profile, {}))))
        notes = {key: text for key, text in notes.items()
                 if not any(r == key or r.startswith(key + ".") or key.startswith(r + ".") for r in replaced)}
    notes.update(task.profile_assumptions.get(profile, {}))
    in_use = {k for k, v in flat.items() if v is not None and v is not False}  # features switched on
    assumptions = {key: text for key, text in notes.items()
                   if key in in_use or any(k.startswith(key + ".") for k in in_use)}
    return RunConfig(config=config, hash=config_hash(config), assumptions=assumptions)
