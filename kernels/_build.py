"""Load the compiled CPU kernels (``csrc/xnor_cpu.cpp``), built by torch's JIT extension
mechanism at first use into torch's extension cache (``~/.cache/torch_extensions``, or
``TORCH_EXTENSIONS_DIR``) under a name carrying the source's hash, and reused afterwards by
every working folder and process (about 30-60 s of compiling once; a cache hit takes well
under a second).

Where no compiler (or ninja) is found, or ``REPRO_KERNELS=torch`` forces it, :func:`extension`
returns None and the callers use the pure-torch path; the reason is printed once, one line.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

_SOURCE = Path(__file__).parent / "csrc" / "xnor_cpu.cpp"
_state: dict = {}


def extension():
    """The compiled module, or None (pure-torch fallback)."""
    if "module" in _state:
        return _state["module"]
    module, reason = None, None
    if os.environ.get("REPRO_KERNELS", "").lower() == "torch":
        reason = "REPRO_KERNELS=torch"
    else:
        try:
            module = _load()
        except Exception as exc:  # no compiler, no ninja, a failed build: fall back, say why
            reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    if module is None:
        print(f"repro kernels: compiled CPU kernels unavailable ({reason}); using the pure-torch path", file=sys.stderr)
    _state["module"], _state["reason"] = module, reason
    return module


def fallback_reason() -> str | None:
    extension()
    return _state["reason"]


def build_seconds() -> float | None:
    """Seconds the last load took in this process (a fresh build, or a cache hit)."""
    return _state.get("seconds")


def _load():
    import hashlib
    import shutil

    import torch
    from torch.utils import cpp_extension

    for tool in ("c++", "ninja"):
        if shutil.which(os.environ.get("CXX", tool) if tool == "c++" else tool) is None and not _ninja_module(tool):
            raise RuntimeError(f"no '{tool}' on PATH")
    started = time.perf_counter()
    digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()[:10]
    # -fopenmp only so that at::parallel_for's header runs in parallel; the library it needs,
    # libgomp.so.1, is the one torch already loaded (same soname): one OpenMP runtime.
    cpp_extension.load(name=f"repro_xnor_cpu_{digest}", sources=[str(_SOURCE)], is_python_module=False,
                       extra_cflags=["-O3", "-fopenmp"], extra_ldflags=["-fopenmp"], verbose=False)
    module = torch.ops.repro_xnor  # registered by the library (TORCH_LIBRARY), no Python bindings to compile
    _state["seconds"] = time.perf_counter() - started
    return module


def _ninja_module(tool: str) -> bool:
    """pip's ``ninja`` package puts the binary beside the interpreter, which may not be on PATH."""
    if tool != "ninja":
        return False
    candidate = Path(sys.executable).parent / "ninja"
    if candidate.exists():
        os.environ["PATH"] = f"{candidate.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        return True
    return False
