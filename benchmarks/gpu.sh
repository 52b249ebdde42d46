#!/usr/bin/env bash
# GPU checks and benchmarks for one NVIDIA GPU, offline, in under 8 minutes:
#   benchmarks/gpu.sh OUT_DIR
# Writes (few files, flat): log.txt, pytest.txt, bench-eager.jsonl, train-summary.json,
# train-metrics.csv, bench-compiled.jsonl. Every stage runs under `timeout`, sized from
# what is left of the 8-minute budget; a stage that runs out keeps what it wrote so far
# (bench writes one JSON line per finished arm). Installs nothing from the network.
# EXTRA_SITE=DIR adds a folder of pure-Python dependencies (pluggy, typer, rich, timm, ...)
# to PYTHONPATH for machines that have torch but not the rest; NO_INSTALL=1 skips the pip step.
set -uo pipefail

OUT=${1:?usage: benchmarks/gpu.sh OUT_DIR}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
LOG="$OUT/log.txt"
START=$(date +%s)
BUDGET=${BUDGET:-470}   # seconds for the whole script (8 minutes = 480)
cd "$REPO"
export PYTHONPATH="$REPO${EXTRA_SITE:+:$EXTRA_SITE}${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python}

log() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }

# stage NAME MAX_SECONDS RESERVE_SECONDS OUTPUT COMMAND...: run COMMAND (output appended to
# OUTPUT) for at most MAX_SECONDS, and never into the RESERVE_SECONDS that later stages need.
stage() {
  local name=$1 max=$2 reserve=$3 output=$4; shift 4
  local left=$((BUDGET - ($(date +%s) - START) - reserve))
  local limit=$((left < max ? left : max))
  if ((limit < 10)); then log "SKIP $name: no time left"; return 0; fi
  log "START $name (timeout ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >>"$output" 2>&1
  local rc=$?
  if ((rc == 124 || rc == 137)); then log "TIMEOUT $name after ${limit}s (partial results kept)"
  else log "END $name rc=$rc"; fi
}

: >"$LOG"
log "ablate GPU checks in $REPO -> $OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true; } | tee -a "$LOG"
if [[ -z ${NO_INSTALL:-} ]] && $PY -m pip --version >/dev/null 2>&1; then
  stage "pip install (offline, no deps)" 60 400 "$LOG" $PY -m pip install -q --no-deps --no-build-isolation -e .
fi
$PY - <<'PY' 2>&1 | tee -a "$LOG"
import torch, ablate, importlib
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
missing = [m for m in ("pluggy", "typer", "rich", "timm", "safetensors", "tomli_w", "packaging")
           if importlib.util.find_spec(m) is None]
print("missing dependencies:", ", ".join(missing) or "none")
PY

stage "pytest -m cuda" 150 300 "$OUT/pytest.txt" $PY -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py
[[ -f "$OUT/pytest.txt" ]] && tail -n 5 "$OUT/pytest.txt" >>"$LOG"

GRID=(--arch vgg08,vgg38 --norm none,bn --shortcut none,identity,proj --device cuda --warmup 5 --steps 30)
stage "bench eager" 110 190 "$LOG" $PY -m ablate bench "${GRID[@]}" --json "$OUT/bench-eager.jsonl"

stage "train VGG38 BN+RC, 2 epochs, 47,500 synthetic images" 120 70 "$LOG" \
  $PY -m ablate run recipes/vgg38.toml --norm bn --shortcut identity --dataset synthetic --epochs 2 \
  --set data.train_size=47500 --set data.val_size=2500 --set data.test_size=10000 --device cuda \
  --out "$WORK/train-run" -q
cp "$WORK/train-run/summary.json" "$OUT/train-summary.json" 2>/dev/null || log "no train summary.json"
cp "$WORK/train-run/metrics.csv" "$OUT/train-metrics.csv" 2>/dev/null || log "no train metrics.csv"

export TORCHINDUCTOR_CACHE_DIR="$WORK/inductor"
stage "bench compiled (reduce-overhead)" 400 0 "$LOG" $PY -m ablate bench "${GRID[@]}" --compile reduce-overhead \
  --json "$OUT/bench-compiled.jsonl"

rm -rf "$WORK"
log "done in $(($(date +%s) - START))s; files: $(cd "$OUT" && echo *)"
