#!/usr/bin/env bash
# One command on the GPU host: install the carried wheels, build FlashInfer's kernels, check them, then measure.
# Usage: scripts/gpu_check.sh            (on the GPU host, with .whl/ from scripts/fetch_gpu_wheels.sh carried)
#        scripts/gpu_check.sh --dry-run  (anywhere: tiny shapes on the CPU with torch_native, to test this script)
# Each step reports its own status; a failed step skips only the steps that need it; the table comes last.
# The host has no pytest: every GPU step is a plain Python script importing only what the host has plus .whl/.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
export OUT=${OUT:-$PWD/.cache/gpu_check}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1
mkdir -p "$OUT"
declare -a SUMMARY=()
declare -A OK=()

step() {  # step NAME NEEDED-STEP|- COMMAND...: runs COMMAND unless NEEDED-STEP failed; records the outcome
  local name=$1 needs=$2
  shift 2
  if [ "$needs" != "-" ] && [ -z "${OK[$needs]:-}" ]; then
    SUMMARY+=("$(printf '%-9s skipped: needs %s' "$name" "$needs")")
    return
  fi
  echo "== $name: $*"
  local started=$SECONDS
  "$@"
  local rc=$?
  if [ $rc -eq 0 ]; then
    OK[$name]=1
    SUMMARY+=("$(printf '%-9s ok (%d s)' "$name" $((SECONDS - started)))")
  else
    SUMMARY+=("$(printf '%-9s FAILED: exit %d after %d s' "$name" $rc $((SECONDS - started)))")
  fi
}

check_wheels() {  # every pinned wheel must be here: without them the GPU part would measure the wrong thing
  local missing=()
  while IFS= read -r spec; do
    local name=${spec%%==*} version=${spec##*==}
    compgen -G ".whl/${name//-/_}-${version}-*.whl" > /dev/null || missing+=("$spec")
  done < <($PY scripts/gpu_wheels.py --specs)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "gpu_check: missing wheels in .whl/: ${missing[*]}" >&2
    echo "gpu_check: run scripts/fetch_gpu_wheels.sh on a machine with PyPI and carry .whl/ to this host" >&2
    return 1
  fi
}

install_wheels() {
  rm -rf .site
  $PY -m pip install -q --no-index --no-deps --target .site .whl/*.whl || return 1
  # FlashInfer's JIT: cache inside the tree, nvcc from CUDA_HOME, one ninja job per core
  export PYTHONPATH=$PWD/.site:$PYTHONPATH PATH=$PATH:$PWD/.site/bin
  export FLASHINFER_WORKSPACE_BASE=${FLASHINFER_WORKSPACE_BASE:-$PWD/.cache/flashinfer}
  local nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  export CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$nvcc")")} MAX_JOBS=${MAX_JOBS:-$(nproc)}
  echo "CUDA_HOME=$CUDA_HOME MAX_JOBS=$MAX_JOBS FLASHINFER_WORKSPACE_BASE=$FLASHINFER_WORKSPACE_BASE"
  $PY -c "import flashinfer, torch; print('flashinfer', flashinfer.__version__, 'torch', torch.__version__)"
}

memory_loop() {  # the engine's footprint over batches of ever new shapes (docs/reliability.md, "GPU")
  $PY scripts/memory_engine_loop.py "$@" > "$OUT/memory.json"
}

if [ $DRY_RUN -eq 1 ]; then
  step kernels - $PY scripts/gpu_kernels.py --dry-run
  step check - $PY scripts/gpu_check.py --dry-run
  step memory - memory_loop --random-shape qwen3-tiny --batches 20 --max-seqs 8 --checkpoints 10 --plateau-from 10
else
  step wheels - check_wheels
  if [ -z "${OK[wheels]:-}" ]; then
    echo "gpu_check: refusing to run the GPU part without the pinned wheels" >&2
    exit 2
  fi
  step install wheels install_wheels
  step kernels install $PY scripts/gpu_kernels.py
  step check kernels $PY scripts/gpu_check.py --backend flashinfer
  step memory kernels memory_loop --device cuda --random-shape qwen3-0.6b --dtype bfloat16 --batches 2000 --check
fi

echo
echo "== gpu_check $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname): scripts/gpu_check.sh $*"
printf '%s\n' "${SUMMARY[@]}"
failed=0
for line in "${SUMMARY[@]}"; do
  [[ $line == *" ok ("* ]] || failed=1
done
if [ -f "$OUT/kernels.json" ] && [ $DRY_RUN -eq 0 ]; then
  $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"kernel build: {len(r['modules'])} modules in {r['build_seconds']:.1f} s; compiled after it: {r['compiled_after_build'] or 'none'}\")" "$OUT/kernels.json"
fi
[ -f "$OUT/table.txt" ] && [ -n "${OK[check]:-}" ] && cat "$OUT/table.txt"
exit $failed
