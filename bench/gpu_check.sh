#!/usr/bin/env bash
# The one prepared check for a GPU machine (issue 14): the CUDA tests, the profiled throughput
# benchmark, the resize benchmark, and the suite cost from the figures just measured. Every step's
# output is tee'd into $OUT (or /tmp/gpu_check) as <step>.log, with summary.txt and machine.txt.
# Sized to finish in under 8 minutes on one H100/H200 (each step has its own time limit).
#
#     bash bench/gpu_check.sh            # from anywhere; PYTHON=... picks the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
LOG_DIR=${OUT:-/tmp/gpu_check}
mkdir -p "$LOG_DIR"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [ -z "${DRAGONFLY_FIXTURES:-}" ] && [ -d shared/fixtures ]; then
  export DRAGONFLY_FIXTURES=$PWD/shared/fixtures
fi
status=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to NAME.log
  local name=$1 limit=$2 start=$SECONDS rc
  shift 2
  echo "== $name: $*" | tee -a "$LOG_DIR/summary.txt"
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

step gpu_tests 150 "$PY" -m pytest tests/gpu -q
step throughput 210 "$PY" bench/throughput.py --profile
step resize 60 "$PY" bench/resize.py
# The per-request figures the profile just measured, else suite_cost's README defaults.
read -r -a measured <<< "$(grep -o -- '--samples-per-s.*' "$LOG_DIR/throughput.log" | tail -1)"
step suite_cost 20 "$PY" bench/suite_cost.py "${measured[@]}" --sources

grep -h "SUMMARY\|passed\|failed\|device busy\|CPU cost per image" "$LOG_DIR"/*.log \
  | tee -a "$LOG_DIR/summary.txt"
exit "$status"
