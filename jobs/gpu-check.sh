#!/usr/bin/env bash
# The checks a lent GPU machine runs, in one call: the CUDA kernel tests (build for sm_80/sm_90,
# exactness, the benchmark pipeline), then `repro kernels bench --device cuda` into a results
# database. From the repository root on that machine:
#
#     jobs/gpu-check.sh OUT_DIR        # writes gpu-tests.log, gpu-bench.txt, gpu-kernels.db there
#
# That machine has torch, nvcc, pandas, PyYAML and pytest but not SQLAlchemy: wheels for its
# Python put in .whl/ beforehand are installed first (README, "Kernels", says how to fetch them).
# The project is installed without its dependencies into a scratch folder, nothing else changes.
set -uo pipefail
out="${1:?usage: jobs/gpu-check.sh OUT_DIR}"
python="${PYTHON:-python3}"
site="$(mktemp -d)"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 2
fi
"$python" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$site" . || exit 2
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$python" -m pytest -q -p no:cacheprovider tests/test_kernels_cuda.py tests/test_kernels_cuda_build.py \
  tests/test_kernels_bench.py 2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}
"$python" -m repro.cli kernels bench --device cuda --pairs 5 --db "sqlite:///$(realpath "$out")/gpu-kernels.db" 2>&1 \
  | tee "$out/gpu-bench.txt"
bench=${PIPESTATUS[0]}
echo "gpu-check: tests exit $tests, bench exit $bench"
exit $((tests || bench))
