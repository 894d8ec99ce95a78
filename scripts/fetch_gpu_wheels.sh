#!/usr/bin/env bash
# Download, on a machine with PyPI, the pinned wheels the air-gapped GPU host lacks (scripts/gpu_wheels.py) into .whl/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
PIP=${PIP:-$PY -m pip}
rm -rf .whl  # a re-run never leaves two versions of one package behind
mkdir -p .whl
mapfile -t specs < <($PY scripts/gpu_wheels.py --specs)
# The host runs CPython 3.12 on x86-64 Linux; --no-deps because the pinned set is the whole closure (checked below).
$PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${specs[@]}"
$PY scripts/gpu_wheels.py --check .whl
ls -l .whl | awk 'NR > 1 {printf "%8.2f MB  %s\n", $5 / 1e6, $9}'
total=$(du -sb --exclude=.venv --exclude=.git --exclude=.site --exclude=.cache . | cut -f1)
limit=$((64 * 1024 * 1024))
echo "tree with .whl/: $((total / 1024 / 1024)) MiB (limit 64 MiB)"
if [ "$total" -ge "$limit" ]; then
  echo "fetch_gpu_wheels: the tree is over 64 MiB; it cannot travel to the GPU host" >&2
  exit 1
fi
