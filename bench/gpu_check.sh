#!/usr/bin/env bash
# The one prepared check for a GPU machine (issues 14 and 22): the CUDA tests (the vLLM engine
# against the HF engine in bf16 among them), the profiled throughput benchmark (both engines
# side by side when vLLM is installed, with issue 22's GPU targets printed as met or not met),
# the resize benchmark, and the suite cost from the figures just measured. Every step's output is
# tee'd into $OUT (or /tmp/gpu_check) as <step>.log, with summary.txt and machine.txt.
# The whole script keeps within BUDGET_S seconds (default 470, under 8 minutes): each step runs
# under its own limit, cut to what the budget has left; a step with under 15 s left is skipped,
# saying so.
#
#     bash bench/gpu_check.sh            # from anywhere; PYTHON=... picks the interpreter
#     DRY_RUN=1 bash bench/gpu_check.sh  # print the steps and their limits, run nothing
#
# vLLM: the vLLM steps run when `import vllm` works in the interpreter (after
# `VLLM=1 bash scripts/bootstrap.sh` on a machine with an NVIDIA driver). Where it does not, they
# are skipped with one line saying why; the device machines of this workplace have no package
# registry, and the CUDA vllm wheel (336 MB, with its own torch 2.14) is far over what a run can
# carry there (64 MiB), so there the vLLM figures stay unmeasured.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$(command -v python || command -v python3 || echo python)}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
LOG_DIR=${OUT:-/tmp/gpu_check}
BUDGET_S=${BUDGET_S:-470}
DRY_RUN=${DRY_RUN:-0}
mkdir -p "$LOG_DIR"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1
if [ -z "${DRAGONFLY_FIXTURES:-}" ] && [ -d shared/fixtures ]; then
  export DRAGONFLY_FIXTURES=$PWD/shared/fixtures
fi
status=0

step() {  # step NAME SECONDS COMMAND...: run within min(SECONDS, budget left), log to NAME.log
  local name=$1 limit=$2 start=$SECONDS rc left
  shift 2
  left=$((BUDGET_S - SECONDS))
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  if [ "$limit" -lt 15 ]; then
    echo "== $name: SKIPPED, ${left} s left of the ${BUDGET_S} s budget" | tee -a "$LOG_DIR/summary.txt"
    status=1
    return
  fi
  echo "== $name (limit ${limit} s): $*" | tee -a "$LOG_DIR/summary.txt"
  if [ "$DRY_RUN" = "1" ]; then return; fi
  timeout "$limit" "$@" 2>&1 | tee "$LOG_DIR/$name.log"
  rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $((SECONDS - start)) s" | tee -a "$LOG_DIR/summary.txt"
  if [ "$rc" -ne 0 ]; then status=1; fi
}

{
  date -u
  git log -1 --format='commit %H %s' 2>/dev/null
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available())"
  echo "CPU cores: $(nproc)"
} 2>&1 | tee "$LOG_DIR/machine.txt"

ENGINES=(--engines hf)
if vllm_version=$("$PY" -c "import vllm; print(vllm.__version__)" 2>/dev/null); then
  echo "vllm: $vllm_version; the vLLM GPU checks run" | tee -a "$LOG_DIR/machine.txt"
  ENGINES=(--engines hf,vllm)
else
  echo "vllm: SKIPPED, not installed in $PY (VLLM=1 bash scripts/bootstrap.sh installs it on a" \
    "machine with a registry; the CUDA wheel, 336 MB with torch 2.14, cannot be carried to a" \
    "machine without one): tests/gpu/test_gpu_vllm.py skips and the bench runs the HF engine only" \
    | tee -a "$LOG_DIR/machine.txt" "$LOG_DIR/summary.txt"
fi

# tests/gpu/test_gpu_vllm.py is among them (it skips, saying why, without vLLM); -s shows how
# many tokens each bf16 comparison kept equal before its first divergence.
step gpu_tests 210 "$PY" -m pytest tests/gpu -q -rs -s
step throughput 300 "$PY" bench/throughput.py --profile "${ENGINES[@]}"
step resize 45 "$PY" bench/resize.py
# The per-request figures the profile just measured, else suite_cost's README defaults.
measured=()
if [ -f "$LOG_DIR/throughput.log" ]; then
  read -r -a measured <<< "$(grep -o -- '--samples-per-s.*' "$LOG_DIR/throughput.log" | tail -1)"
fi
step suite_cost 20 "$PY" bench/suite_cost.py "${measured[@]}" --sources

if [ "$DRY_RUN" != "1" ]; then
  grep -h "SUMMARY\|GPU targets\|passed\|failed\|skipped\|equal before\|device busy\|CPU cost per image" \
    "$LOG_DIR"/*.log | tee -a "$LOG_DIR/summary.txt"
fi
exit "$status"
