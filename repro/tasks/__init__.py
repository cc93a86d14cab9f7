"""Tasks (pose, face alignment, classification): what a table's rows train on and how they are scored.

A task supplies default config values, the ``smoke`` / ``proxy`` profile overlays, the
conventions it assumes, and the four things the training loop needs: data, model, loss and
evaluation. Papers only say which task a table belongs to.
"""
from __future__ import annotations

import importlib

from ..errors import ReproError

_TASK_MODULES = {"pose": "repro.tasks.pose", "classification": "repro.tasks.classification",
                 "face_alignment": "repro.tasks.face"}


def get_task(name: str):
    if name not in _TASK_MODULES:
        raise ReproError(f"unknown task '{name}': choose from {', '.join(_TASK_MODULES)}")
    return importlib.import_module(_TASK_MODULES[name]).TASK
