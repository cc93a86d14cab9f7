"""One name -> constructor table per kind of component, all listed here.

Components are built from a name plus keyword arguments, so a config can say ``block: hpm`` or
``optimizer: rmsprop`` and a paper plugin can add its own by registering it (in the module the
plugin imports), without touching the core. The CLI's choices come from these tables too.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@BLOCKS.register("hpm")`` on a class or factory function."""

        def add(constructor: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered (by {self._entries[name]!r})")
            self._entries[name] = constructor
            return constructor

        return add

    def __getitem__(self, name: str) -> Callable[..., Any]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "(none)"
            # Components defined by a paper plugin exist only once its module was imported.
            raise KeyError(
                f"unknown {self.kind} '{name}'; registered: {known} "
                f"(a {self.kind} defined by a paper plugin is registered when its module is imported)"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def build(self, name: str, **kwargs: Any) -> Any:
        return self[name](**kwargs)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


# Networks (repro.nn and the plugins).
BLOCKS = Registry("block")          # Block(cin, cout, conv: ConvSpec, **options)
MODELS = Registry("model")          # Model(conv=ConvSpec, **options)
QUANTIZERS = Registry("quantizer")  # Quantizer(**options)
ACTIVATIONS = Registry("activation")  # factory(channels, **options)
# Model transforms applied after a model is built: ``fn(model, **options) -> model`` (e.g. a
# paper's weight re-parametrization), named by ``reparam.kind`` in a config (repro/nn/reparam.py).
REPARAMS = Registry("reparam")

# Runs (repro.tasks, repro.train, repro.runner).
TASKS = Registry("task")            # Task class (repro/tasks/base.py: the Task protocol)
OPTIMIZERS = Registry("optimizer")  # factory(params, train: dict) -> torch.optim.Optimizer
RECIPES = Registry("recipe")        # Recipe(options, context), named by its key under ``train`` (repro/recipes.py)
DATASETS = Registry("dataset")      # check(root) -> repro.datasets.DataReport, for `repro data check`
EXECUTORS = Registry("executor")    # factory(folder, **options) -> a submitit executor (repro/runner.py)
