"""``repro data bench``: how many training samples a second the pose data path makes on this
machine, from real-format files. It writes an MPII fixture (1280 x 720 JPEGs at quality 90 made
of real photographs at their own resolution, persons 200-700 px tall, the pose-hg-train
annotation files), then times the training batches of the paper recipe (decode, crop, rotate,
scale, flip to 256 x 256, 64 x 64 heatmaps) in one process and in DataLoader workers. Per core =
samples over the CPU-seconds every process spent on them (the training process's share of
receiving the batches included; the workers' start and stop excluded by differencing a short and
a long run), so a node with N free cores feeds about N times that. The JPEG decode alone is
timed too: it bounds what any pipeline that reads the files can reach.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ...data import batches
from ...machine import cpu_model, usable_cpus
from .. import fixtures
from ..keypoints.files import KeypointFiles
from . import mpii

IMAGE_SIZE = (1280, 720)  # MPII's usual frame


def _config(task, batch_size: int) -> dict:
    import copy

    config = copy.deepcopy(task.defaults)
    config["train"]["batch_size"] = batch_size
    config["data"]["heatmap_size"] = config["data"]["input_size"] // 4
    return config


def _rate(task, split: KeypointFiles, config: dict, workers: int, n_batches: int) -> tuple[float, float, int]:
    """(samples a second of wall time after one batch of warm-up, CPU-seconds of every process
    (the training one and its workers, from start to stop), samples) over ``n_batches`` + 1
    training batches."""
    import gc
    import os
    import resource

    def cpu_seconds() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    previous = os.environ.get("REPRO_DATA_WORKERS")
    os.environ["REPRO_DATA_WORKERS"] = str(workers)
    try:
        cpu_started = cpu_seconds()
        stream = batches(task, split, config, seed=1, train=True)
        samples = next(stream)[0].shape[0]  # workers started, first decode done
        started, timed = time.perf_counter(), 0
        for _, (images, _targets) in zip(range(n_batches), stream):
            timed += images.shape[0]
        elapsed = time.perf_counter() - started
        stream.close()  # the DataLoader stops and joins its workers: their CPU time is counted
        gc.collect()
        cpu = cpu_seconds() - cpu_started
    finally:
        if previous is None:
            os.environ.pop("REPRO_DATA_WORKERS", None)
        else:
            os.environ["REPRO_DATA_WORKERS"] = previous
    return timed / elapsed, cpu, samples + timed


def _decode_ms(paths: list[str]) -> float:
    """Median time to decode one whole image (OpenCV, libjpeg-turbo), in ms."""
    import statistics

    import cv2

    times = []
    for path in paths:
        started = time.perf_counter()
        cv2.imread(path)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def run(workers: int | None = None, images: int = 64, batch_size: int = 16, n_batches: int = 48) -> dict:
    from . import PoseTask

    task = PoseTask()
    workers = workers or usable_cpus()
    config = _config(task, batch_size)
    with tempfile.TemporaryDirectory(prefix="repro-data-bench-") as folder:
        root = Path(folder) / "mpii"
        fixtures.write_mpii(root, n_train=images, n_valid=2, size=IMAGE_SIZE, mat=False, scale_range=(1.0, 3.5), photo=True)
        split = mpii.load(root, "train")
        decode_ms = _decode_ms(split.paths)
        file_kb = sum(Path(p).stat().st_size for p in split.paths) / len(split.paths) / 1024
        split = KeypointFiles.concat([split] * max(1, (n_batches + 1) * batch_size // len(split) + 1))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one core for the one-process figure (the workers set one thread each)
        try:
            single, _, _ = _rate(task, split, config, 0, max(4, n_batches // 4))
            # Per core from two runs of different lengths: what the workers' start, stop and last
            # prefetched (never used) batches cost cancels out of the difference.
            _, cpu_short, samples_short = _rate(task, split, config, workers, n_batches // 4)
            parallel, cpu_long, samples_long = _rate(task, split, config, workers, n_batches)
            per_cpu_second = (samples_long - samples_short) / (cpu_long - cpu_short)
        finally:
            torch.set_num_threads(threads)
    return {"cpu_model": cpu_model(), "workers": workers, "samples_per_s": round(parallel, 1),
            "samples_per_s_per_core": round(per_cpu_second, 1), "single_process_samples_per_s": round(single, 1),
            "image": f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} JPEG, {file_kb:.0f} KB", "full_decode_ms": round(decode_ms, 2),
            "input_size": config["data"]["input_size"], "heatmap_size": config["data"]["heatmap_size"],
            "batch_size": batch_size, "batches": n_batches, "augment": config["data"]["augment"]}
