"""Benchmarks of the binary kernels against what a user would run instead: float32 BLAS on the
CPU; cuBLAS FP32 / TF32 / BF16 and int8 on the GPU. The shapes come from the caller (the
papers' layer shapes: ``repro kernels bench``); results are :class:`BenchResult` rows.

Every row times the binary op (A) and its float32 baseline (B) alternately in one process
(A B, B A, A B, ...: the second core is shared and noisy), and reports the medians of the times
and the median of the PAIRED ratios baseline / binary. A conv row's binary time is the whole
layer from a float input: sign packing + packed im2col + XNOR GEMM + scale, against F.conv2d.
"""
from __future__ import annotations

import contextlib
import functools
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from . import ops, packing

# Binary MACs one iteration of each issue-rate probe does (kernels/csrc/xnor_cpu.cpp,
# ``issue_probe``): register-only chains of the path's inner op mix, and of fp32 FMA at the
# widest width (what BLAS runs): 16 x 512-bit xor+vpopcntq+add, 10 x 256-bit nibble-LUT
# popcounts, 8 scalar POPCNTs; 16 x 16-lane and 12 x 8-lane FMAs.
ISSUE_PROBES = {"avx512": 16 * 512, "avx2": 10 * 256, "popcnt": 8 * 64, "fma512": 16 * 16, "fma256": 12 * 8}


@functools.cache
def measured_peaks(iters: int = 200_000, tries: int = 5) -> dict[str, float]:
    """Peak MACs a second of one core, measured now (best of ``tries``, thread CPU time): each
    binary path this CPU runs and its fp32 FMA. Tens of milliseconds; {} without the compiled kernels."""
    from ._build import extension
    ext = extension()
    if ext is None:
        return {}
    kinds = [k for k in ("avx512", "avx2", "popcnt") if k in ops.available_impls()]
    kinds.append("fma512" if "avx512" in kinds else "fma256")  # every AVX-512 core here has its FMA
    peaks = {}
    for kind in kinds:
        try:
            ext.issue_probe(kind, 1000)
        except RuntimeError:  # e.g. no FMA on this CPU
            continue
        best = 0.0
        for _ in range(tries):
            started = time.thread_time()
            ext.issue_probe(kind, iters)
            best = max(best, ISSUE_PROBES[kind] * iters / max(time.thread_time() - started, 1e-9))
        peaks[kind] = best
    return peaks


def ceiling_ratio(backend: str) -> float | None:
    """Peak binary MACs of the ``backend`` path over peak fp32 MACs, both measured on this core."""
    peaks = measured_peaks()
    fma = peaks.get("fma512") or peaks.get("fma256")
    return peaks[backend] / fma if backend in peaks and fma else None


@dataclass
class Shape:
    kind: str    # "gemm" or "conv"
    name: str
    m: int = 0   # GEMM: [M, K] x [K, N]
    k: int = 0
    n: int = 0
    cin: int = 0  # conv: [1, cin, size, size] -> cout, kernel, stride, padding
    cout: int = 0
    size: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0

    def gemm_dims(self) -> tuple[int, int, int]:
        if self.kind == "gemm":
            return self.m, self.k, self.n
        out = (self.size + 2 * self.padding - self.kernel) // self.stride + 1
        return out * out, self.cin * self.kernel ** 2, self.cout


def shape_from_dict(spec: dict) -> Shape:
    """``{kind: gemm, name, m, k, n}`` or ``{kind: conv, name, cin, cout, size, kernel, stride}``
    (padding kernel // 2, as the papers' 'same' convs)."""
    spec = dict(spec)
    if spec["kind"] == "conv":
        spec.setdefault("kernel", 3)
        spec.setdefault("padding", spec["kernel"] // 2)
    return Shape(**spec)


@dataclass
class BenchResult:
    """One measured shape (or model): the binary op against one baseline."""

    kind: str
    name: str
    shape: dict
    m: int
    k: int
    n: int
    baseline: str
    device: str
    threads: int
    backend: str
    binary_ms: float
    baseline_ms: float
    ratio: float          # median of paired baseline / binary
    binary_gmacs: float   # binary MACs per second, 1e9
    baseline_gflops: float
    packed_weight_bytes: int
    float_weight_bytes: int
    memory_ratio: float
    ceiling_ratio: float | None
    pairs: int
    extra: dict = field(default_factory=dict)


def clock(threads: int) -> tuple[Callable[[], float], str]:
    """One thread: the thread's CPU time, so that time the scheduler gives to the other users of
    the shared cores is not counted (torch and the kernels run a 1-thread op in the calling
    thread). More threads: wall time (CPU time would count the pool's spinning)."""
    return (time.thread_time, "thread CPU time") if threads == 1 else (time.perf_counter, "wall time")


def paired_times(binary: Callable[[], object], baseline: Callable[[], object], pairs: int,
                 min_sample_s: float = 0.02, timer: Callable[[], float] = time.perf_counter,
                 warmup: int = 1) -> tuple[float, float, float]:
    """Median binary and baseline seconds per call and the median paired ratio."""
    for _ in range(warmup):  # first-call allocations, packing caches, padding corrections
        binary(), baseline()
    start = timer()
    baseline()
    reps = max(1, int(min_sample_s / max(timer() - start, 1e-6)))

    def sample(fn):
        t0 = timer()
        for _ in range(reps):
            fn()
        return (timer() - t0) / reps

    tb, tf, ratios = [], [], []
    for i in range(pairs):
        if i % 2:
            f, b = sample(baseline), sample(binary)
        else:
            b, f = sample(binary), sample(baseline)
        tb.append(b), tf.append(f), ratios.append(f / b)
    return statistics.median(tb), statistics.median(tf), statistics.median(ratios)


def _gemm_ops(shape: Shape, generator: torch.Generator):
    """The binary GEMM (activations packed in the call), the kernel alone, and what a user would
    run instead: fp32 and bf16 matmul (MKL / oneDNN, AMX where present) and int8 on the +-1 values
    (``torch._int_mm``, exact: int32 accumulation)."""
    m, k, n = shape.m, shape.k, shape.n
    x, w = torch.randn(m, k, generator=generator), torch.randn(k, n, generator=generator)
    wp = packing.pack_rows(w.T.contiguous())  # weights packed once
    scale = w.abs().mean(0)
    xp = ops.pack_rows(x)
    xb, wb = x.bfloat16(), w.bfloat16()
    xi, wi = torch.where(x < 0, -1, 1).to(torch.int8), torch.where(w < 0, -1, 1).to(torch.int8)
    baselines = {"torch.matmul fp32": lambda: torch.matmul(x, w), "torch.matmul bf16": lambda: torch.matmul(xb, wb),
                 "int8 torch._int_mm (+-1)": lambda: torch._int_mm(xi, wi)}
    return (lambda: ops.xnor_gemm(ops.pack_rows(x), wp, k, scale)), baselines, wp.numel() * 8, w.numel() * 4, \
        (lambda: ops.xnor_gemm(xp, wp, k, scale))


def _conv_ops(shape: Shape, generator: torch.Generator):
    """The whole binary layer from a float input (and the kernel alone, its input already packed)
    against what a user would run instead: F.conv2d in fp32 and bf16, NCHW and channels_last
    (oneDNN's preferred layout), and oneDNN/FBGEMM's quantized int8 conv on the +-1 values."""
    x = torch.randn(1, shape.cin, shape.size, shape.size, generator=generator)
    w = torch.randn(shape.cout, shape.cin, shape.kernel, shape.kernel, generator=generator)
    packed = ops.PackedConvWeight.from_weight(w, shape.stride, shape.padding, scale=w.abs().mean((1, 2, 3)))
    xp = ops.pack_channels(x)
    conv = functools.partial(F.conv2d, stride=shape.stride, padding=shape.padding)
    last = torch.channels_last
    baselines = {}
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        xd, wd = x.to(dtype), w.to(dtype)
        xl, wl = xd.contiguous(memory_format=last), wd.contiguous(memory_format=last)
        baselines[f"F.conv2d {label}"] = functools.partial(conv, xd, wd)
        baselines[f"F.conv2d {label} channels_last"] = functools.partial(conv, xl, wl)
    if int8 := _quantized_conv(x, w, shape):
        baselines[f"int8 quantized conv (+-1, {torch.backends.quantized.engine})"] = int8
    return (lambda: ops.binary_conv2d(x, packed)), baselines, packed.bits.numel() * 8, w.numel() * 4, \
        (lambda: ops.binary_conv2d(xp, packed))


def _quantized_conv(x: torch.Tensor, w: torch.Tensor, shape: Shape) -> Callable[[], object] | None:
    """torch's quantized int8 conv (the default engine: x86 = oneDNN/FBGEMM, VNNI or AMX where
    present) on the +-1 values, channels_last input already quantized, as an int8 network keeps
    its activations. Its output is requantized to 8 bits (scale K/127): a speed baseline, not
    exact as the binary conv and torch._int_mm are. None where this torch has no engine for it."""
    import warnings
    try:
        with warnings.catch_warnings():  # torch's quantized tensors are deprecated, still the way to run it
            warnings.simplefilter("ignore")
            xq = torch.quantize_per_tensor(torch.where(x < 0, -1.0, 1.0).contiguous(memory_format=torch.channels_last),
                                           1.0, 128, torch.quint8)
            wq = torch.quantize_per_tensor(torch.where(w < 0, -1.0, 1.0), 1.0, 0, torch.qint8)
            prepacked = torch.ops.quantized.conv2d_prepack(wq, None, [shape.stride] * 2, [shape.padding] * 2, [1, 1], 1)
        out_scale = max(1, w[0].numel()) / 127
        return functools.partial(torch.ops.quantized.conv2d, xq, prepacked, out_scale, 128)
    except (RuntimeError, AttributeError):
        return None


def default_cpu() -> str:
    """What the platform module calls this CPU (often only 'x86_64'; callers pass the model name)."""
    return f"cpu ({platform.processor() or platform.machine()})"


def _runs(baseline: Callable[[], object], label: str, echo: Callable[[str], None] | None) -> bool:
    """Whether the baseline runs at this shape (torch._int_mm has size rules: M > 16, K and N
    multiples of 8); if not, one line says so."""
    try:
        baseline()
    except RuntimeError as exc:
        if echo:
            echo(f"{label} skipped: {str(exc).splitlines()[0][:100]}")
        return False
    return True


def run(shapes: list[Shape], threads: int = 1, pairs: int = 7,
        echo: Callable[[str], None] | None = None, cpu: str | None = None) -> list[BenchResult]:
    """CPU: every shape, binary (packing included) against each baseline, one row each, with the
    kernel alone (activations already packed) timed against the same baseline."""
    torch.set_num_threads(threads)
    backend = ops.backend()
    timer, clock_name = clock(threads)
    generator = torch.Generator().manual_seed(0)
    rows = []
    with torch.inference_mode():
        for shape in shapes:
            make = _gemm_ops if shape.kind == "gemm" else _conv_ops
            binary, baseline_calls, packed_bytes, float_bytes, kernel_only = make(shape, generator)
            extras_of_shape: dict = {}
            for baseline_name, baseline in baseline_calls.items():
                if not _runs(baseline, f"{shape.name}: {baseline_name}", echo):
                    continue
                tb, tf, ratio = paired_times(binary, baseline, pairs, timer=timer)
                extra = {"clock": clock_name, "peak_gmacs": {k: round(v / 1e9, 1) for k, v in measured_peaks().items()}}
                if kernel_only is not None:  # also the kernel alone, its activations already packed
                    tk, _, ratio_k = paired_times(kernel_only, baseline, pairs, timer=timer)
                    extra.update(kernel_only_ms=tk * 1e3, kernel_only_ratio=ratio_k)
                    if threads > 1 and "thread_speedup" not in extras_of_shape:
                        extras_of_shape.update(thread_scaling(kernel_only, threads, pairs))
                    extra.update(extras_of_shape)
                m, k, n = shape.gemm_dims()
                macs = m * k * n
                row = BenchResult(shape.kind, shape.name, {key: v for key, v in asdict(shape).items() if v and key not in ("kind", "name")},
                          m, k, n, baseline_name, cpu or default_cpu(), threads, backend,
                          tb * 1e3, tf * 1e3, ratio, macs / tb / 1e9, 2 * macs / tf / 1e9, packed_bytes, float_bytes,
                          float_bytes / packed_bytes, ceiling_ratio(backend), pairs, extra)
                rows.append(row)
                if echo:
                    echo(format_row(row))
                    if "kernel_only_ms" in extra:
                        scaling = (f"; {threads} threads {extra['thread_speedup']:.2f}x its 1-thread speed"
                                   if "thread_speedup" in extra else "")
                        echo(f"{'':<4}(kernel alone, activations already packed: {extra['kernel_only_ms']:.3f} ms, "
                             f"{extra['kernel_only_ratio']:.2f}x{scaling})")
    return rows


def thread_scaling(kernel: Callable[[], object], threads: int, pairs: int) -> dict:
    """The kernel at ``threads`` threads against itself at 1 thread, wall time, alternating."""
    def at(count: int) -> Callable[[], object]:
        def call():
            torch.set_num_threads(count)
            return kernel()
        return call

    try:
        _, one, speedup = paired_times(at(threads), at(1), pairs)  # speedup = 1-thread time / threads time
    finally:
        torch.set_num_threads(threads)
    return {"thread_speedup": speedup, "kernel_only_1_thread_ms": one * 1e3}


def as_gemms(shapes: list[Shape]) -> list[Shape]:
    """Each shape as the GEMM it is (im2col dims for a conv): what the GPU benchmark runs."""
    return [Shape("gemm", s.name, *s.gemm_dims()) for s in shapes]


def gpu_baselines(x: torch.Tensor, w: torch.Tensor) -> dict[str, Callable[[], object]]:
    """cuBLAS at each precision for ``x [M, K] @ w[N, K].T``, and INT8 on the +-1 values."""
    def fp32(tf32: bool):
        def call():
            torch.backends.cuda.matmul.allow_tf32 = tf32  # a global switch: set on every call
            return x @ w.T
        return call
    xb, wb = x.bfloat16(), w.bfloat16()
    xi, wi = torch.where(x < 0, -1, 1).to(torch.int8), torch.where(w < 0, -1, 1).to(torch.int8).T
    return {"cuBLAS fp32": fp32(False), "cuBLAS tf32": fp32(True), "cuBLAS bf16": lambda: xb @ wb.T,
            "int8 torch._int_mm (+-1)": lambda: torch._int_mm(xi, wi)}


@contextlib.contextmanager
def _tf32_setting_kept():
    """The TF32 baseline switches torch's global matmul setting: put the caller's back."""
    saved = torch.backends.cuda.matmul.allow_tf32
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def run_gpu(shapes: list[Shape], pairs: int = 7, echo: Callable[[str], None] | None = None,
            device: str = "cuda", impls: dict | None = None, pack: Callable | None = None) -> list[BenchResult]:
    """GPU: every shape as a GEMM (:func:`as_gemms`), each binary kernel (sign packing of the activations included;
    the kernel alone in ``extra``) against each baseline of :func:`gpu_baselines`, in one process
    with CUDA-synchronized clocks. ``device``, ``impls`` and ``pack`` are for testing the
    pipeline on a CPU (default: the kernels of repro_kernels.cuda)."""
    if impls is None:
        from . import cuda
        impls = {f"cuda {impl}": functools.partial(cuda.xnor_gemm, impl=impl)
                 for impl in cuda.IMPLS if impl != "tensor_core" or cuda.tensor_core_unavailable_reason() is None}
        pack = cuda.pack_rows
    on_gpu = device.startswith("cuda")

    def timer() -> float:
        if on_gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    name = torch.cuda.get_device_name() if on_gpu else default_cpu()
    generator = torch.Generator(device=device).manual_seed(0)
    rows = []
    with torch.inference_mode(), _tf32_setting_kept():
        for shape in as_gemms(shapes):
            m, k, n = shape.m, shape.k, shape.n
            x = torch.randn(m, k, generator=generator, device=device)
            w = torch.randn(n, k, generator=generator, device=device)
            wp, xp, scale = pack(w), pack(x), w.abs().mean(1)  # weights packed once
            for impl_name, gemm in impls.items():
                binary, kernel_only = _gemm_calls(gemm, pack, x, xp, wp, k, scale)
                for baseline_name, baseline in gpu_baselines(x, w).items():
                    if not _runs(baseline, f"{shape.name}: {baseline_name}", echo):
                        continue
                    tb, tf, ratio = paired_times(binary, baseline, pairs, timer=timer)
                    tk, _, ratio_k = paired_times(kernel_only, baseline, pairs, timer=timer)
                    macs = m * k * n
                    row = BenchResult("gemm", shape.name, {"M": m, "K": k, "N": n}, m, k, n, baseline_name, name, 0, impl_name,
                              tb * 1e3, tf * 1e3, ratio, macs / tb / 1e9, 2 * macs / tf / 1e9, wp.numel() * 8,
                              w.numel() * 4, w.numel() * 4 / (wp.numel() * 8), None, pairs,
                              {"clock": "wall time, device-synchronized", "kernel_only_ms": tk * 1e3,
                               "kernel_only_ratio": ratio_k})
                    rows.append(row)
                    if echo:
                        echo(format_gpu_row(row))
    return rows


def _gemm_calls(gemm: Callable, pack: Callable, x, xp, wp, k: int, scale) -> tuple[Callable, Callable]:
    """The binary GEMM with the activations' packing in the call, and the kernel alone (pre-packed)."""
    return (lambda: gemm(pack(x), wp, k, scale)), (lambda: gemm(xp, wp, k, scale))


GPU_HEADER = (f"{'shape':<38} {'M':>6} {'K':>6} {'N':>5} {'binary kernel':<17} {'baseline':<25} {'binary ms':>10} "
              f"{'base ms':>9} {'ratio':>7} {'alone':>7} {'bin TMAC/s':>10} {'base TFLOP/s':>12}")


def format_gpu_row(row: BenchResult) -> str:
    return (f"{row.name[:38]:<38} {row.m:>6} {row.k:>6} {row.n:>5} {row.backend:<17} {row.baseline:<25} "
            f"{row.binary_ms:>10.3f} {row.baseline_ms:>9.3f} {row.ratio:>6.2f}x {row.extra['kernel_only_ratio']:>6.2f}x "
            f"{row.binary_gmacs / 1e3:>10.1f} {row.baseline_gflops / 1e3:>12.1f}")


HEADER = (f"{'shape':<38} {'M':>6} {'K':>6} {'N':>5} {'baseline':<24} {'binary ms':>10} {'base ms':>9} {'ratio':>6} "
          f"{'bin GMAC/s':>10} {'base GOP/s':>10} {'weights':>8} {'ceiling':>7}")


def format_row(row: BenchResult) -> str:
    ceiling = f"{row.ceiling_ratio:.1f}x" if row.ceiling_ratio else "-"
    return (f"{row.name[:38]:<38} {row.m:>6} {row.k:>6} {row.n:>5} {row.baseline[:24]:<24} {row.binary_ms:>10.3f} "
            f"{row.baseline_ms:>9.3f} {row.ratio:>5.2f}x {row.binary_gmacs:>10.1f} {row.baseline_gflops:>10.1f} "
            f"{row.memory_ratio:>7.1f}x {ceiling:>7}")


def _bytes_of(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def _saved_bytes(state: dict) -> int:
    import io
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell()


def peak_rss_increase(fn: Callable[[], object]) -> int | None:
    """Bytes by which the process's peak resident memory rose above its resident memory while
    ``fn`` ran: the activations and workspaces of a forward pass, the loaded weights excluded.
    Linux (glibc): freed heap goes back first (malloc_trim), then the peak is reset through
    /proc/self/clear_refs and read back as VmHWM. None where that is not possible."""
    import ctypes
    import re

    def status(key: str) -> int:
        with open("/proc/self/status") as f:
            return int(re.search(rf"{key}:\s+(\d+) kB", f.read()).group(1)) * 1024

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS")
        fn()
        return max(0, status("VmHWM") - before)
    except (OSError, AttributeError):
        return None


def float_forms(model: torch.nn.Module) -> dict[str, tuple[torch.nn.Module, torch.dtype, torch.memory_format]]:
    """The float model in the forms torch offers on a CPU, with the input dtype and layout each
    takes: fp32 NCHW, fp32 channels_last and bf16 channels_last (oneDNN's layout; AMX where present)."""
    import copy

    last = torch.channels_last
    return {"float32 model (same architecture)": (model, torch.float32, torch.contiguous_format),
            "float32 model, channels_last": (copy.deepcopy(model).to(memory_format=last), torch.float32, last),
            "bfloat16 model, channels_last": (copy.deepcopy(model).to(torch.bfloat16, memory_format=last), torch.bfloat16, last)}


RSS_BATCHES = (1, 16)


def bench_model(name: str, info: dict, binary_model: torch.nn.Module, float_model: torch.nn.Module,
                example: torch.Tensor, threads: int = 1, pairs: int = 5,
                echo: Callable[[str], None] | None = None, cpu: str | None = None) -> list[BenchResult]:
    """End to end at the example's batch: the packed model against the float model of the same
    architecture (a real-valued network of the same shapes) in each of its :func:`float_forms`,
    and against the PyTorch binary model it was packed from (float convs of +-1 values). Each row
    also holds the peak memory of one forward pass at batches 1 and 16, packed and baseline.
    ``info`` is stored with the rows."""
    import copy

    from .packed import pack_model

    torch.set_num_threads(threads)
    packed = copy.deepcopy(binary_model)
    units = pack_model(packed)
    backend = ops.backend()
    timer, clock_name = clock(threads)
    baselines = {**float_forms(float_model),
                 "PyTorch binary model (float convs)": (binary_model, torch.float32, torch.contiguous_format)}

    def batch_of(size: int, dtype=torch.float32, layout=torch.contiguous_format) -> torch.Tensor:
        return example[:1].expand(size, *example.shape[1:]).to(dtype).contiguous(memory_format=layout)

    def peaks(model, dtype=torch.float32, layout=torch.contiguous_format) -> dict[str, float | None]:
        grown = {str(b): peak_rss_increase(functools.partial(model, batch_of(b, dtype, layout))) for b in RSS_BATCHES}
        return {b: None if v is None else round(v / 2**20, 1) for b, v in grown.items()}

    rows = []
    with torch.inference_mode():
        max_diff = max((a - b).abs().max().item() for a, b in zip(_outputs(packed(example)), _outputs(binary_model(example))))
        packed_peaks = peaks(packed)
        for baseline_name, (baseline, dtype, layout) in baselines.items():
            x = example.to(dtype).contiguous(memory_format=layout)
            # a whole network's first calls allocate every activation: warm both up a few times
            tb, tf, ratio = paired_times(functools.partial(packed, example), functools.partial(baseline, x), pairs,
                                         min_sample_s=0.0, timer=timer, warmup=3)
            base_peaks = peaks(baseline, dtype, layout)
            row = BenchResult("model", name, {"input": list(example.shape), **info}, 0, 0, 0, baseline_name,
                              cpu or default_cpu(), threads, backend,
                              tb * 1e3, tf * 1e3, ratio, 0.0, 0.0, _saved_bytes(packed.state_dict()),
                              _saved_bytes(binary_model.state_dict()), 0.0, None, pairs,
                              {"clock": clock_name, "packed_units": units, "max_abs_diff_vs_pytorch_binary": max_diff,
                               "memory_packed_model_bytes": _bytes_of(packed), "memory_baseline_model_bytes": _bytes_of(baseline),
                               "peak_rss_mb_packed": packed_peaks, "peak_rss_mb_baseline": base_peaks})
            row.memory_ratio = row.float_weight_bytes / row.packed_weight_bytes
            rows.append(row)
            if echo:
                rss = ", ".join(f"batch {b}: {packed_peaks[b]} vs {base_peaks[b]} MB" for b in packed_peaks)
                echo(f"{name}: packed {tb * 1e3:.1f} ms vs {baseline_name} {tf * 1e3:.1f} ms: {ratio:.2f}x faster; "
                     f"weights in memory {_bytes_of(packed) / 1e6:.2f} MB vs {_bytes_of(baseline) / 1e6:.2f} MB; "
                     f"peak memory of a forward pass {rss}")
        if echo:
            fastest = min((r for r in rows if r.baseline.startswith(("float32", "bfloat16"))), key=lambda r: r.baseline_ms)
            echo(f"file {rows[0].packed_weight_bytes / 1e6:.2f} MB vs float32 state dict {rows[0].float_weight_bytes / 1e6:.2f} MB "
                 f"({rows[0].memory_ratio:.1f}x); max |packed - PyTorch binary| = {max_diff:.2e} (each unit agrees to float "
                 f"rounding; through many layers a rounding that moves a value across a sign threshold can flip it); "
                 f"the fastest float form here: {fastest.baseline} ({fastest.baseline_ms:.1f} ms), packed {fastest.ratio:.2f}x faster")
    return rows


def _outputs(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]
