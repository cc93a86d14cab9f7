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
