"""The GPU benchmark's pipeline (the papers' shapes, baselines, paired timing, rows, storage, show), run on
the CPU with the exact pure-torch GEMM in place of the CUDA kernels; the kernels themselves are
tested in test_kernels_cuda.py where a GPU exists."""
import torch

from repro import benchmarks, results
from repro.plugins import discover
from repro_kernels import bench, ops, packing


def test_gpu_bench_pipeline_runs_on_cpu(workdir):
    lines = []
    impls = {"torch reference": lambda a, b, k, scale: ops.xnor_gemm(a, b, k, scale, impl="torch")}
    shapes = benchmarks.shapes(list(discover().values()), only="@4", device="cuda")
    rows = bench.run_gpu(shapes, pairs=1, echo=lines.append, device="cpu", impls=impls, pack=packing.pack_rows)
    names = {r.name for r in rows}
    assert names == {s.name for s in shapes} and len(names) == 3
    assert {r.baseline for r in rows} == {"cuBLAS fp32", "cuBLAS tf32", "cuBLAS bf16", "int8 torch._int_mm (+-1)"}
    for r in rows:
        assert r.kind == "gemm" and r.backend == "torch reference" and r.ratio > 0 and r.extra["kernel_only_ratio"] > 0
        assert (r.m, r.k, r.n) == (16, r.shape["K"], r.shape["N"]) and r.memory_ratio == 32.0
    assert len(lines) == len(rows)
    benchmarks.store(rows, None)
    shown = benchmarks.render_stored(results.kernel_benchmarks(None), list(discover().values()))
    assert "torch reference vs cuBLAS bf16" in shown and "over 3 shapes" in shown


def test_gpu_baselines_compute_the_same_product():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(32, 64, generator=g), torch.randn(16, 64, generator=g)
    outs = {name: fn().float() for name, fn in bench.gpu_baselines(x, w).items()}
    torch.testing.assert_close(outs["cuBLAS fp32"], x @ w.T)
    torch.testing.assert_close(outs["cuBLAS bf16"], x @ w.T, atol=0.5, rtol=0.05)
    signs = lambda t: torch.where(t < 0, -1.0, 1.0)  # noqa: E731
    assert torch.equal(outs["int8 torch._int_mm (+-1)"], signs(x) @ signs(w).T)


def test_fastest_way_per_shape_counts_int8_against_the_kernel_alone():
    """A shape is won by the binary kernel only when it beats every baseline; against int8 (its
    inputs already int8) the kernel alone counts, its inputs already packed."""
    import pandas as pd

    from repro.benchmarks import fastest_ways
    rows = [("gemm", "a", "torch.matmul fp32", 3.0, {"kernel_only_ratio": 9.0}), ("gemm", "a", "torch.matmul bf16", 5.0, {}),
            ("gemm", "a", "int8 torch._int_mm (+-1)", 0.8, {"kernel_only_ratio": 2.5}),
            ("conv", "b", "F.conv2d fp32", 4.0, {}), ("conv", "b", "F.conv2d bf16", 0.5, {}),
            ("conv", "c", "F.conv2d fp32", 6.0, {}), ("conv", "c", "F.conv2d bf16", 1.5, {})]
    frame = pd.DataFrame([{"device": "cpu (X)", "backend": "avx512", "kind": kind, "name": name, "baseline": baseline,
                           "ratio": ratio, "baseline_ms": 1.0, "extra": extra} for kind, name, baseline, ratio, extra in rows])
    assert fastest_ways(frame) == ["fastest way to run a +-1 layer on cpu (X): binary (avx512) on 2 of 3 shapes, "
                                   "F.conv2d bf16 on 1 of 3 shapes"]
