"""Profiles: one table runnable at several budgets. Every stored result says which produced it.

``smoke`` and ``proxy`` take the task's (and the table's) config overlay: small networks on data
the project generates; ``paper`` is the recipe as written, on the paper's dataset; ``structure``
builds the paper-size model and measures it without training or data.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import ReproError


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    overlay: bool      # takes the task's / table's overlay of this name
    trains: bool       # trains and evaluates (else measures the model)
    needs_data: bool   # reads a dataset (checked before anything is stored)
    numeric: bool      # compared number to number with the published values (else by the claims)
    default_seeds: int = 1  # seeds a row runs unless --seeds says otherwise
    deterministic: bool = False  # one value per config: seeds do not vary it, claims are read directly


PROFILES = {p.name: p for p in (
    Profile("smoke", "seconds a row on generated data: checks the pipeline (tests)", overlay=True, trains=True,
            needs_data=True, numeric=False),
    # Judged by the claims, which a statistical test decides only with several seeds.
    Profile("proxy", "minutes a row on 2 CPU cores, on data the project generates; judged by the claims",
            overlay=True, trains=True, needs_data=True, numeric=False, default_seeds=3),
    Profile("paper", "the paper's recipe and dataset, for a GPU cluster", overlay=False, trains=True,
            needs_data=True, numeric=True),
    Profile("structure", "the paper-size model measured without training (#params, FLOPs, size)", overlay=False,
            trains=False, needs_data=False, numeric=True, deterministic=True),
)}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ReproError(f"unknown profile '{name}': choose from {', '.join(PROFILES)}")
    return PROFILES[name]
