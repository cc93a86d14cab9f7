"""The real datasets the tasks read, each checked the same way (``repro data check``): what was
found and where, its counts against the official ones, and what is missing with the exact place
to put it. A task registers a checker per dataset (``@DATASETS.register("mpii")`` on a function
``root -> DataReport``); ``root`` is the data folder (``REPRO_DATA_DIR``, default ``data``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ReproError
from .registry import DATASETS


def data_root() -> Path:
    return Path(os.environ.get("REPRO_DATA_DIR", "data"))


@dataclass
class DataReport:
    name: str
    where: Path
    source: str  # where to get it
    found: list[str] = field(default_factory=list)  # what was found
    counts: list[tuple[str, int, int | None]] = field(default_factory=list)  # (what, found, official)
    missing: list[str] = field(default_factory=list)  # each: what is missing and where it goes
    notes: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Nothing missing (counts that differ from the official ones are reported, not fatal:
        a subset or a later release still trains)."""
        return not self.missing

    @property
    def complete(self) -> bool:
        return self.usable and all(official is None or found == official for _, found, official in self.counts)

    def lines(self) -> list[str]:
        state = "complete" if self.complete else "usable, counts differ" if self.usable else "MISSING"
        out = [f"{self.name}: {state} ({self.where})"]
        out += [f"  found    {line}" for line in self.found]
        for what, found, official in self.counts:
            verdict = "" if official is None else " (official)" if found == official else f" (official: {official})"
            out.append(f"  count    {what}: {found}{verdict}")
        out += [f"  missing  {line}" for line in self.missing]
        out += [f"  note     {line}" for line in self.notes]
        if self.missing:
            out.append(f"  get it   {self.source}")
        return out


def check(name: str, root: Path | None = None) -> DataReport:
    _register_builtin()
    if name not in DATASETS:
        raise ReproError(f"unknown dataset '{name}': choose from {', '.join(DATASETS.names())}")
    return DATASETS[name](root or data_root())


_REQUIRED: dict[tuple[str, Path], DataReport] = {}


def require(name: str, root: Path | None = None) -> DataReport:
    """The report of ``name`` (checked once a process); a ReproError naming the first missing
    piece when it cannot be read."""
    root = root or data_root()
    report = _REQUIRED.get((name, root)) or check(name, root)
    if not report.usable:
        raise ReproError(f"{name} is not ready: {report.missing[0]} (`repro data check --dataset {name}` says what "
                         f"else and where to get it), or use --profile proxy")
    _REQUIRED[(name, root)] = report
    return report


def names() -> list[str]:
    _register_builtin()
    return DATASETS.names()


def _register_builtin() -> None:
    from .tasks import get_task  # importing the tasks registers their datasets

    get_task("pose")
