"""Model transforms applied after a model is built, and their collapse for inference.

A config may name a transform: ``reparam: {kind: NAME, **options}`` builds
``REPARAMS[NAME](model, **options)`` (``kind: none`` or no ``reparam`` = no transform). A paper
registers its own (e.g. bulat2019b's SVD / Tucker re-parametrizations of the binary weights).

Transforms that make a weight a function of other tensors should use
``torch.nn.utils.parametrize``: then :func:`collapse` turns the model into a plain one whose
layers hold the reconstructed weights as ordinary parameters (what is kept for inference).
Factors shared by several layers live once in the model, in a :class:`SharedFactors` module,
which :func:`collapse` deletes.
"""
from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.utils import parametrize

from ..registry import REPARAMS
from .layers import QuantConv2d


def apply_reparam(model: nn.Module, spec: dict[str, Any] | None) -> nn.Module:
    """``REPARAMS[spec['kind']](model, **other options)``; identity for None or kind ``none``."""
    options = dict(spec or {})
    kind = options.pop("kind", "none")
    if kind in (None, "none"):
        return model
    return REPARAMS[kind](model, **options)


def binary_convs(model: nn.Module) -> list[tuple[str, QuantConv2d]]:
    """(name, layer) of every QuantConv2d whose kernel quantizer binarizes, in module order."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, QuantConv2d) and getattr(m.kernel_quantizer, "binarizes", False)]


def is_reparametrized(model: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in model.modules())


class SharedFactors(nn.ModuleList):
    """Parameters that several layers' parametrizations share (e.g. one tensor decomposition for a
    group of layers), held once by the model (the parametrizations keep plain references, so the
    state_dict has them once). Needed for training only: :func:`collapse` deletes them."""


def collapse(model: nn.Module) -> nn.Module:
    """In place: every parametrized tensor becomes an ordinary parameter holding its current value
    and the factors are dropped; quantizers and learned scales stay. Returns ``model``."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            # torch injects one class per parametrized module and removing a parametrization edits
            # that class, which a deepcopy shares with its original: give this module its own.
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
                tensor = getattr(module, name)
                tensor.data = tensor.data.clone()  # own storage, not a view of a shared reconstruction
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SharedFactors):
                delattr(parent, name)
    return model
