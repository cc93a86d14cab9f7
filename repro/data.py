"""One epoch's batches, drawn the same way for every task: resumable at any batch.

The order of an epoch comes from its seed; each training batch gets its own generator, seeded
from the epoch's draw and the batch's index, for its augmentation. So batch ``b`` of an epoch is
the same whether the epoch ran from its start or resumed at ``b`` after an interruption, with no
generator state to carry. A task builds one batch from the indices it is given
(``Task.batch``).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch


def batch_count(size: int, batch_size: int, train: bool) -> int:
    """Batches of an epoch over ``size`` examples (a last training batch of one is dropped:
    batch norm needs more than one sample)."""
    full, rest = divmod(size, batch_size)
    return full + (1 if rest and (rest > 1 or not train) else 0)


def batches(task, split, config: dict, seed: int | None = None, train: bool = True,
            start: int = 0) -> Iterator[tuple[Any, Any]]:
    """(inputs, targets) of batch ``start`` onwards; training batches shuffled by ``seed`` and
    augmented, evaluation batches in order and as they are."""
    size, batch_size = len(split), config["train"]["batch_size"]
    if train:
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(size, generator=generator)
        base = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
    else:
        order = torch.arange(size)
    for index in range(start, batch_count(size, batch_size, train)):
        chosen = order[index * batch_size:(index + 1) * batch_size]
        generator = torch.Generator().manual_seed(base + index) if train else None
        yield task.batch(split, chosen, config, generator, train)
