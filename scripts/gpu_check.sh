#!/usr/bin/env bash
# One command on a GPU host: install the carried wheels, run the GPU-marked tests, print the parity/throughput table.
# Usage: scripts/gpu_check.sh            (on the GPU host, with .whl/ carried from scripts/fetch_gpu_wheels.sh)
#        scripts/gpu_check.sh --dry-run  (anywhere: tiny shapes on the CPU, to test the script itself)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" != "--dry-run" ] && compgen -G ".whl/*.whl" > /dev/null; then
  $PY -m pip install -q --no-index --no-deps --target .site .whl/*.whl
  export PYTHONPATH=$PWD/.site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} HF_HUB_OFFLINE=1
# FlashInfer compiles kernels on first use: keep its cache inside the tree's temp area.
export FLASHINFER_WORKSPACE_BASE=${FLASHINFER_WORKSPACE_BASE:-$PWD/.cache}
if [ "${1:-}" != "--dry-run" ]; then
  $PY -m pytest -q -m gpu tests -p no:cacheprovider
fi
$PY scripts/gpu_check.py "$@"
