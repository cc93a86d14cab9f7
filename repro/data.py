"""One epoch's batches, drawn the same way for every task: resumable at any batch.

The order of an epoch comes from its seed; each training batch gets its own generator, seeded
from the epoch's draw and the batch's index, for its augmentation. So batch ``b`` of an epoch is
the same whether the epoch ran from its start or resumed at ``b`` after an interruption, with no
generator state to carry. A task builds one batch from the indices it is given
(``Task.batch``).

A split that reads its images from files (``decoded_in_workers``) is batched in DataLoader
worker processes, one batch a worker, in the same order and with the same generators: the
batches are identical with 0 or N workers. ``REPRO_DATA_WORKERS`` sets N (default: the CPUs
this process may use).
"""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import ReproError


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
    jobs = [(order[index * batch_size:(index + 1) * batch_size], base + index if train else None)
            for index in range(start, batch_count(size, batch_size, train))]
    build = BatchBuilder(task, split, config, train)
    workers = data_workers() if getattr(split, "decoded_in_workers", False) else 0
    if workers == 0 or len(jobs) < 2:
        yield from (build[job] for job in jobs)
        return
    loader = DataLoader(build, batch_size=None, sampler=jobs, num_workers=min(workers, len(jobs)),
                        worker_init_fn=_worker_init, prefetch_factor=2, pin_memory=torch.cuda.is_available())
    iterator = iter(loader)
    try:
        yield from iterator
    except ReproError as exc:
        # A worker's error comes back with the worker's traceback in its message: keep the one line it had.
        raise ReproError(str(exc).rstrip().splitlines()[-1].split("ReproError: ", 1)[-1]) from None
    finally:  # the workers stop now, not whenever the iterator is collected (a traceback may hold it)
        getattr(iterator, "_shutdown_workers", lambda: None)()


class BatchBuilder(Dataset):
    """Batch ``(indices, seed)`` of a split: what one worker builds."""

    def __init__(self, task, split, config: dict, train: bool):
        self.task, self.split, self.config, self.train = task, split, config, train

    def __getitem__(self, job: tuple[torch.Tensor, int | None]):
        indices, seed = job
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.task.batch(self.split, indices, self.config, generator, self.train)


def data_workers() -> int:
    value = os.environ.get("REPRO_DATA_WORKERS")
    if value is None:
        return len(os.sched_getaffinity(0))
    if not value.isdigit():
        raise ReproError(f"REPRO_DATA_WORKERS must be a number of processes (0: batches in the training process), got {value!r}")
    return int(value)


def _worker_init(_worker: int) -> None:
    torch.set_num_threads(1)  # the workers are the parallelism
    # A stop (Ctrl-C to the process group, submitit's SIGUSR2 before a time limit) is the training
    # process's to handle: it saves a checkpoint at the next batch, then closes the workers; a worker
    # running the inherited handlers would requeue the job a second time. SIGTERM stays deadly (the
    # DataLoader and multiprocessing end workers with it); where it reaches the workers first (SLURM
    # signals every process of a job), the training loop saves where it stands (repro/train.py).
    for name in ("SIGINT", "SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
