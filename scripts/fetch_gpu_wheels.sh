#!/usr/bin/env bash
# Download, on a machine with PyPI, the wheels the air-gapped GPU host lacks (see shared/guides/gpu.md) into .whl/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for spec in flashinfer-python==0.6.8 apache-tvm-ffi pyzmq msgspec; do
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$spec"
done
du -sh .whl
