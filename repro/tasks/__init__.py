"""Tasks: what a table's rows train on and how they are scored (the Task protocol, base.py).

Each task has one home here: ``keypoints/`` (hourglass heatmap localization, shared), ``pose/``
(MPII / LSP joints, PCKh, synthetic figures), ``face/`` (AFLW landmarks, NME, synthetic faces),
``classification/`` (ImageNet / CIFAR readers, digits proxy), ``saliency/`` (CPD on the salient
object benchmarks, max F-measure and MAE, synthetic objects proxy). A plugin adds a task by
registering its class in ``repro.registry.TASKS``; papers only say which task a table belongs to.
"""
from __future__ import annotations

import importlib

from ..errors import ReproError
from ..registry import TASKS

BUILTIN = ("repro.tasks.pose", "repro.tasks.face", "repro.tasks.classification", "repro.tasks.saliency")


def get_task(name: str):
    """The task registered as ``name`` (an instance of its class)."""
    for module in BUILTIN:
        importlib.import_module(module)
    if name not in TASKS:
        raise ReproError(f"unknown task '{name}': choose from {', '.join(TASKS.names())}")
    return TASKS[name]()
