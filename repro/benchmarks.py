"""``repro kernels``: the kernel library's benchmarks at the papers' layer shapes, stored in the
results database and shown beside the papers' efficiency claims (both from ``paper.yaml``).

The library (``repro_kernels``) times what it is given; this module chooses the shapes, builds
trained or paper-size models for ``bench-model``, and stores and reads the rows.
"""
from __future__ import annotations

import copy
import socket
import statistics
from collections.abc import Callable

import pandas as pd
import torch

from repro_kernels import bench

from . import db as dbm
from .config import resolve
from .errors import ReproError
from .export import build, find_run, load_trained
from .machine import cpu_model
from .plugins import Paper

# Shapes no paper owns: square GEMMs, the sizes BLAS benchmarks usually quote; the GPU run adds
# the large ones its goal is set at.
GENERIC_SHAPES = [{"kind": "gemm", "name": f"square {n}", "m": n, "k": n, "n": n} for n in (1024, 2048)]
GPU_ONLY_SHAPES = [{"kind": "gemm", "name": f"square {n}", "m": n, "k": n, "n": n} for n in (4096, 8192)]


def shapes(papers: list[Paper], only: str | None = None, device: str = "cpu") -> list[bench.Shape]:
    """The generic shapes, then each paper's ``kernel_shapes`` (a name seen before is skipped)."""
    specs = GENERIC_SHAPES + [spec for paper in papers for spec in paper.kernel_shapes]
    if device == "cuda":
        specs = specs + GPU_ONLY_SHAPES
    seen, result = set(), []
    for spec in specs:
        if spec["name"] in seen or (only and only not in spec["name"]):
            continue
        seen.add(spec["name"])
        result.append(bench.shape_from_dict(spec))
    return result


def run(papers: list[Paper], device: str, threads: int, pairs: int, only: str | None,
        echo: Callable[[str], None] | None) -> list[bench.BenchResult]:
    """``repro kernels bench``: every shape on the CPU (binary vs float32 torch, ``threads``
    threads) or the GPU (each binary kernel vs cuBLAS and int8), a header line first."""
    chosen = shapes(papers, only, device)
    if not chosen:
        raise ReproError(f"no benchmark shape matches --only '{only}'")
    if device == "cuda":
        from repro_kernels import cuda
        if reason := cuda.unavailable_reason():
            raise ReproError(f"--device cuda: {reason}; the GPU benchmarks need a CUDA GPU and nvcc")
        if echo:
            tc = cuda.tensor_core_unavailable_reason()
            echo(f"binary kernels on {torch.cuda.get_device_name()} (CUDA cores{'' if tc else ', 1-bit tensor cores'}) "
                 f"vs cuBLAS / torch._int_mm; activations packed in each call ('alone': pre-packed); wall time, "
                 f"device-synchronized; medians of {pairs} alternating pairs; ratio = baseline time / binary time"
                 + (f"; tensor-core kernel skipped: {tc}" if tc else ""))
            echo(bench.GPU_HEADER)
        return bench.run_gpu(chosen, pairs, echo=echo)
    if echo:
        from repro_kernels import ops
        peaks = ", ".join(f"{kind} {value / 1e9:.0f}" for kind, value in bench.measured_peaks().items())
        echo(f"binary (kernels: {ops.backend()}) vs torch fp32 / bf16 / int8 on {cpu_model()}, {threads} thread(s), "
             f"{bench.clock(threads)[1]}; medians of {pairs} alternating pairs; ratio = baseline time / binary time; "
             f"measured peak G MAC/s of one core: {peaks or 'not measured (no compiled kernels)'}; "
             f"ceiling = binary peak / fp32 FMA peak")
        echo(bench.HEADER)
    return bench.run(chosen, threads, pairs, echo=echo, cpu=f"cpu ({cpu_model()})")


def bench_model(paper: Paper, table_id: str, row_id: str, profile: str, seed: int, db_url: str | None,
                threads: int, pairs: int, echo: Callable[[str], None] | None) -> tuple[str, list[bench.BenchResult]]:
    """A row's packed model (trained if a finished run exists, else untrained at that profile's
    size) against the float model of its architecture; returns (source, rows)."""
    table = paper.table(table_id)
    config = resolve(table, table.row(row_id), profile, seed).config
    if not config.get("conv", {}).get("binary"):
        raise ReproError(f"row '{row_id}' is a real-valued network: nothing to pack")
    try:
        config, model = load_trained(find_run(paper.id, table_id, row_id, profile, seed, db_url))
        source = "trained weights"
    except ReproError:
        model, source = build(config), "untrained weights (no finished run at this profile): timing and sizes only"
    float_config = copy.deepcopy(config)
    float_config["conv"]["binary"] = False
    size = config["data"]["input_size"]
    example = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    spec = config["model"]
    name = f"{spec['name']} {spec.get('block', '')} f{spec.get('features')} d{spec.get('depth')} s{spec.get('stacks')} @{size}"
    info = {**{k: v for k, v in spec.items() if v is not None}, "row": config["run"]}
    if echo:
        echo(f"{paper.id} table {table_id} row {row_id} at profile {profile}, {source}; batch 1, {threads} thread(s), "
             f"{bench.clock(threads)[1]}, medians of {pairs} alternating pairs")
    return source, bench.bench_model(name, info, model, build(float_config), example, threads, pairs, echo,
                                     cpu=f"cpu ({cpu_model()})")


def store(rows: list[bench.BenchResult], db_url: str | None) -> None:
    with dbm.session(db_url) as db:
        for row in rows:
            db.add(dbm.KernelBenchRecord(
                host=socket.gethostname(), device=row.device, threads=row.threads, backend=row.backend, kind=row.kind,
                name=row.name, shape={**row.shape, "M": row.m, "K": row.k, "N": row.n} if row.kind != "model" else row.shape,
                baseline=row.baseline, binary_ms=row.binary_ms, baseline_ms=row.baseline_ms, ratio=row.ratio,
                binary_gmacs=row.binary_gmacs or None, packed_bytes=row.packed_weight_bytes,
                float_bytes=row.float_weight_bytes, ceiling_ratio=row.ceiling_ratio, extra={"pairs": row.pairs, **row.extra}))
        db.commit()


def claim_measurement(paper_id: str, claim, kernels: pd.DataFrame) -> dict:
    """What the stored benchmarks (a :func:`repro.results.kernel_benchmarks` frame) say about one
    claim: the measured ratios of its kind, scope and device (a whole-model claim: the paper's own
    models only), as ``measured_min``, ``measured_median``, ``measured_max``, ``measured_rows``
    and the sentence ``measured``."""
    empty = {"measured_min": None, "measured_median": None, "measured_max": None, "measured_rows": 0}
    if claim.unmeasured:
        return {**empty, "measured": f"not measured by the kernels: {claim.unmeasured}"}
    on_cpu = kernels["device"].str.startswith("cpu")
    on_device = kernels[on_cpu if claim.device == "cpu" else ~on_cpu]
    if claim.scope == "model":
        mine = on_device[(on_device["kind"] == "model") & on_device["baseline"].str.startswith("float32")
                         & on_device["shape"].map(lambda shape: ((shape or {}).get("row") or {}).get("paper") == paper_id)]
        what = "whole packed model vs the float model"
    else:
        mine = on_device[on_device["kind"].isin(["gemm", "conv"]) & on_device["baseline"].str.contains("fp32")]
        what = "binary layers vs their fp32 baseline"
    mine = mine[mine["packed_bytes"].notna() & (mine["packed_bytes"] > 0)]
    values = list(mine["ratio"] if claim.kind == "speed" else mine["memory_ratio"])
    if not values:
        command = "repro kernels bench-model" if claim.scope == "model" else "repro kernels bench"
        return {**empty, "measured": f"not measured yet ({command}{' --device cuda' if claim.device == 'cuda' else ''})"}
    low, median, high = min(values), statistics.median(values), max(values)
    return {"measured_min": low, "measured_median": median, "measured_max": high, "measured_rows": len(values),
            "measured": f"measured {low:.2f}x .. {high:.2f}x (median {median:.2f}x over {len(values)} rows; {what})"}


def fastest_ways(layers: pd.DataFrame) -> list[str]:
    """Per device: which way of running a +-1 layer was fastest, shape by shape: the binary kernel
    or the quickest baseline measured beside it. Against int8 (its +-1 inputs already int8, as a
    previous int8 layer leaves them) the binary kernel alone counts (its inputs already packed)."""
    def ratio(row) -> float:
        extra = row["extra"] if isinstance(row["extra"], dict) else {}
        return extra.get("kernel_only_ratio", row["ratio"]) if "int8" in row["baseline"] else row["ratio"]

    lines = []
    for (device, backend), mine in layers.groupby(["device", "backend"]):
        wins: dict[str, int] = {}
        for _, shape in mine.groupby(["kind", "name"]):
            ratios = shape.apply(ratio, axis=1)
            best = shape.loc[ratios.idxmin()]
            way = f"binary ({backend})" if ratios.min() > 1 else best["baseline"]
            wins[way] = wins.get(way, 0) + 1
        ranked = sorted(wins.items(), key=lambda item: -item[1])
        lines.append(f"fastest way to run a +-1 layer on {device}: "
                     + ", ".join(f"{way} on {count} of {sum(wins.values())} shapes" for way, count in ranked))
    return lines


def render_stored(kernels: pd.DataFrame, papers: list[Paper]) -> str:
    """Measured ratios (a :func:`repro.results.kernel_benchmarks` frame) beside the papers'
    efficiency claims."""
    lines = []
    if kernels.empty:
        lines.append("no kernel benchmarks stored yet: run 'repro kernels bench' (and 'repro kernels bench-model')")
    else:
        widths = (6, 40, 36, 7, 17)
        lines.append(f"{'kind':<{widths[0]}} {'shape':<{widths[1]}} {'baseline':<{widths[2]}} {'threads':>{widths[3]}} "
                     f"{'backend':<{widths[4]}} {'binary ms':>10} {'base ms':>9} {'ratio':>7} {'memory':>7} {'ceiling':>7}")
        for r in kernels.itertuples():
            memory = f"{r.memory_ratio:.1f}x" if r.packed_bytes else "-"
            ceiling = f"{r.ceiling_ratio:.1f}x" if r.ceiling_ratio and not pd.isna(r.ceiling_ratio) else "-"
            lines.append(f"{r.kind:<6} {r.name[:40]:<40} {r.baseline[:36]:<36} {r.threads:>7} {r.backend:<17} {r.binary_ms:>10.3f} "
                         f"{r.baseline_ms:>9.3f} {r.ratio:>6.2f}x {memory:>7} {ceiling:>7}")
        lines.append("")
        layers = kernels[kernels["kind"].isin(["gemm", "conv"])]
        for (device, baseline, backend), mine in layers.groupby(["device", "baseline", "backend"]):
            speed = list(mine["ratio"])
            memory = list(mine["memory_ratio"].dropna())
            memory_text = f"; binary-layer weight memory {min(memory):.1f}x .. {max(memory):.1f}x" if memory else ""
            lines.append(f"measured on {device}, {backend} vs {baseline}: layer speed ratio {min(speed):.2f}x .. "
                         f"{max(speed):.2f}x (median {statistics.median(speed):.2f}x over {len(speed)} shapes){memory_text}")
        lines += fastest_ways(layers)
        for r in kernels.itertuples():
            if r.kind == "model" and r.baseline.startswith("float32"):
                lines.append(f"measured: {r.name}: packed model {r.ratio:.2f}x the float model's speed, "
                             f"file {r.memory_ratio:.1f}x smaller than the float32 state dict")
    claims = [(paper.id, claim) for paper in papers for claim in paper.efficiency_claims]
    if claims:
        lines += ["", "Efficiency claims of the papers (paper.yaml), beside what is stored:"]
        for paper_id, claim in claims:
            lines.append(f"  {paper_id:<10} {claim.value:g}x {claim.kind} ({claim.scope}, {claim.device}): {claim.text}")
            lines.append(f"  {'':<10} -> {claim_measurement(paper_id, claim, kernels)['measured']}")
    return "\n".join(lines)
