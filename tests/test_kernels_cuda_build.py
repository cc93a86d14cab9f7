"""The CUDA source compiles for Ampere and Hopper (ptxas accepts the 1-bit mma), on machines
with nvcc and no GPU too: where a GPU exists, test_kernels_cuda.py runs the kernels."""
import shutil
import subprocess
import sysconfig

import pytest

from repro_kernels import cuda

NVCC = shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="no nvcc on PATH")
def test_cuda_source_compiles_for_sm80_and_sm90(tmp_path):
    from torch.utils.cpp_extension import include_paths

    includes = [f"-I{p}" for p in include_paths()] + [f"-I{sysconfig.get_paths()['include']}"]
    command = [NVCC, "-std=c++20", "-O3", "-c", str(cuda._SOURCE), "-o", str(tmp_path / "xnor_cuda.o"),
               "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
               "--keep", "--keep-dir", str(tmp_path), "-Xcompiler", "-fPIC", "-w", *includes]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert done.returncode == 0, "\n".join(errors[:20]) or done.stderr[-2000:]
    ptx = sorted(tmp_path.glob("*.ptx"))
    assert len(ptx) == 2  # one per architecture, each with the 1-bit mma (not compiled out by its guard)
    assert all("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc" in p.read_text() for p in ptx)
