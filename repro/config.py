"""Resolve a table row + profile + seed into one concrete config with a stable hash.

Layers, later ones winning: the task's defaults, the table's ``base`` (over the paper's
``defaults`` for the task), the row's ``spec``, then for profiles with an overlay (smoke, proxy)
the task's overlay and the table's own, then the run identity (paper, table, row, profile,
seed). ``paper`` and ``structure`` take the recipe as written.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from .errors import ReproError
from .merge import deep_merge, flatten
from .plugins import Row, Table
from .profiles import get_profile
from .recipes import active
from .registry import RECIPES
from .tasks import get_task

__all__ = ["RunConfig", "config_hash", "deep_merge", "flatten", "resolve"]


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class RunConfig:
    config: dict
    hash: str
    assumptions: dict[str, str] = field(default_factory=dict)
    dependencies: list[RunConfig] = field(default_factory=list)  # runs to finish first (a teacher)

    @property
    def identity(self) -> dict:
        return self.config["run"]


def check_types(config: dict, defaults: dict, where: str = "") -> None:
    """Each value of ``config`` that ``defaults`` has is of the default's kind (an int where an
    int is expected, a mapping where a mapping is...); None is always allowed (it switches a
    feature off). So ``epochs: "eight"`` stops here, not inside a job."""
    for key, default in defaults.items():
        value = config.get(key)
        path = f"{where}{key}"
        if value is None or default is None:
            continue
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ReproError(f"config {path}: expected a mapping, got {value!r}")
            check_types(value, default, path + ".")
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}
            raise ReproError(f"config {path}: expected {kind.get(type(default), type(default).__name__)}, got {value!r}")


def resolve(table: Table, row: Row, profile_name: str, seed: int) -> RunConfig:
    profile = get_profile(profile_name)
    if not row.runnable:
        raise ReproError(f"row '{row.id}' of {table.paper_id} table {table.id} is not runnable: {row.not_runnable_reason}")
    task = get_task(table.task)
    config = deep_merge(task.defaults, table.base)
    config = deep_merge(config, row.spec)
    overlay = {}
    if profile.overlay:
        overlay = deep_merge(task.profiles.get(profile.name, {}), table.profiles.get(profile.name, {}))
        config = deep_merge(config, overlay)
    config["task"] = table.task
    config["run"] = {"paper": table.paper_id, "table": table.id, "row": row.id, "profile": profile.name, "seed": int(seed)}
    try:
        check_types(config, task.defaults)
        task.finalize(config)
    except ReproError as exc:
        raise ReproError(f"{table.paper_id} table {table.id} row '{row.id}' ({profile.name}): {exc}") from None
    dependencies = []
    for name, options in active(config):
        dependencies += RECIPES[name].dependencies(
            options, lambda row_id, dep_seed: resolve(table, table.row(row_id), profile.name, dep_seed))
    flat = flatten(config)
    notes = {**task.assumptions, **table.assumptions}
    if overlay:  # a value the profile replaces is no longer the paper's assumption
        replaced = set(flatten(overlay))
        notes = {key: text for key, text in notes.items()
                 if not any(r == key or r.startswith(key + ".") or key.startswith(r + ".") for r in replaced)}
        notes.update(task.profile_assumptions.get(profile.name, {}))
    in_use = {k for k, v in flat.items() if v is not None and v is not False}  # features switched on
    assumptions = {key: text for key, text in notes.items()
                   if key in in_use or any(k.startswith(key + ".") for k in in_use)}
    return RunConfig(config=config, hash=config_hash(config), assumptions=assumptions, dependencies=dependencies)
