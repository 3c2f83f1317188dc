#!/usr/bin/env bash
# The GPU half of issue 5: the throughput benchmark on one CUDA GPU in fp32 and bf16, each with and
# without torch.compile. About 4 minutes on an H100 (compile's cold start is most of it).
# Run from the repository root: bash benchmarks/gpu.sh ; then copy the four tables (and the
# nvidia-smi line) into benchmarks/RESULTS.md. Target there: train_vs_seed >= 4 in bf16.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
for precision in fp32 bf16; do
  for compile in "" "--compile"; do
    echo "=== precision=$precision ${compile:-no-compile}"
    "$PYTHON" benchmarks/throughput.py --quick --device cuda --precision "$precision" $compile
  done
done
