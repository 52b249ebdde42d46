#!/usr/bin/env bash
# GPU checks and benchmarks for one NVIDIA GPU, in one call, offline, in under 9 minutes:
#   benchmarks/gpu.sh OUT_DIR                     on the GPU machine
#   SIMULATE_CPU=1 benchmarks/gpu.sh OUT_DIR      every stage with tiny sizes on the CPU (CI runs this)
# Writes (few files, flat, at most 8): log.txt, pytest.txt, bench-key.jsonl, bench-grid.jsonl,
# train-summary.json, train-metrics.csv, bench-modes.jsonl (VGG38 BN+RC's training step eager, as one
# CUDA graph and compiled with reduce-overhead, with memory and MFU), compare.txt (benchmarks/compare.py:
# ablate's trainer against the limit, a coursework loop and Lightning, eager, then compiled). Every stage runs under `timeout`,
# sized from what is left of the budget; a stage that runs out keeps what it wrote so far (bench
# writes one JSON line per finished arm). The most important arms run first: VGG38 BN+RC, plain
# VGG38, VGG08.
# Nothing is installed and nothing is fetched: ablate runs from this checkout (PYTHONPATH), the
# pytest fixtures load with `-p ablate.testing`, and pure-Python dependencies the machine lacks
# (tomli-w on the H200 image) come from wheels in .whl/ (fill it with benchmarks/gpu-wheels.sh;
# the device tool carries the ignored folder with `carry: [".whl"]`), unpacked into a temporary
# folder on PYTHONPATH.
set -uo pipefail

OUT=${1:?usage: benchmarks/gpu.sh OUT_DIR}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
LOG="$OUT/log.txt"
START=$(date +%s)
PY=${PYTHON:-python3}
SIM=${SIMULATE_CPU:-}
BUDGET=${BUDGET:-$([[ -n $SIM ]] && echo 1500 || echo 520)}  # seconds for the whole script
SLOW=$([[ -n $SIM ]] && echo 3 || echo 1)  # the simulation's stages get 3x the time: a busy 2-core CPU
cd "$REPO"
mkdir -p "$WORK/site"
for wheel in "$REPO"/.whl/*.whl; do [[ -e $wheel ]] && "$PY" -m zipfile -e "$wheel" "$WORK/site"; done
export PYTHONPATH="$REPO:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

log() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$LOG"; }

# stage NAME MAX_SECONDS RESERVE_SECONDS OUTPUT COMMAND...: run COMMAND (output appended to
# OUTPUT) for at most MAX_SECONDS, and never into the RESERVE_SECONDS that later stages need.
FAILED=0
stage() {
  local name=$1 max=$(($2 * SLOW)) reserve=$(($3 * SLOW)) output=$4; shift 4
  local left=$((BUDGET - ($(date +%s) - START) - reserve))
  local limit=$((left < max ? left : max))
  if ((limit < 10)); then log "SKIP $name: no time left"; return 0; fi
  log "START $name (timeout ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >>"$output" 2>&1
  local rc=$?
  if ((rc == 124 || rc == 137)); then log "TIMEOUT $name after ${limit}s (partial results kept)"
  else log "END $name rc=$rc"; fi
  ((rc == 0)) || FAILED=$((FAILED + 1))
}

: >"$LOG"
if [[ -n $SIM ]]; then
  log "SIMULATION on the CPU (tiny sizes) in $REPO -> $OUT"
  DEVICE=cpu
  cat >"$WORK/tiny.toml" <<'TOML'
[model]
arch = "vgg38"
width = 4
[data]
dataset = "synthetic"
num_classes = 10
train_size = 200
val_size = 50
test_size = 50
[train]
batch_size = 50
TOML
  RECIPE="$WORK/tiny.toml"; STEPS=(--warmup 1 --steps 2); TRAIN_SIZES=(--set data.train_size=200 --set model.width=4)
  GRID=(--arch vgg08,vgg38 --norm bn --shortcut none,proj)  # 4 of the 12 arms: each costs a process start
  COMPILE=default
  COMPARE=(--arch vgg08 --width 4 --num-classes 10 --steps 2 --batch-size 10 --rounds 1); COMPILED_ARCH=vgg08
else
  log "ablate GPU checks in $REPO -> $OUT"
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true; } | tee -a "$LOG"
  DEVICE=cuda
  RECIPE=""; STEPS=(--warmup 5 --steps 30); TRAIN_SIZES=(--set data.train_size=47500 --set data.test_size=10000)
  GRID=(--arch vgg08,vgg38 --norm none,bn --shortcut none,identity,proj)
  COMPILE=reduce-overhead
  COMPARE=(--arch vgg08,vgg38 --steps 100 --rounds 5); COMPILED_ARCH=vgg38
fi
"$PY" - <<'PY' 2>&1 | tee -a "$LOG"
import importlib.util, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
needed = ("pluggy", "typer", "rich", "timm", "safetensors", "tomli_w", "packaging", "typing_extensions", "pytest")
missing = [m for m in needed if importlib.util.find_spec(m) is None]
print("missing dependencies:", ", ".join(missing) or "none", "(add their wheels to .whl/)" if missing else "")
PY
# Lightning is benchmark-only (compare.py's fourth contender): used where it imports, from .whl/ or the image.
CONTENDERS=limit,ablate,coursework
if "$PY" -c "import lightning" >/dev/null 2>&1; then CONTENDERS+=,lightning; else log "no lightning: compare.py without it"; fi
stage "ablate --version" 30 0 "$LOG" "$PY" -m ablate --version

export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1  # the image's many pytest plugins stay out; ours is loaded by name
stage "pytest -m cuda" 150 300 "$OUT/pytest.txt" "$PY" -m pytest -m cuda -q -p no:cacheprovider -p ablate.testing tests/test_cuda.py
[[ -f "$OUT/pytest.txt" ]] && tail -n 3 "$OUT/pytest.txt" >>"$LOG"

BENCH=("$PY" -m ablate bench ${RECIPE:+"$RECIPE"} --device "$DEVICE" "${STEPS[@]}")
for arm in "vgg38 bn identity" "vgg38 none none" "vgg08 none none"; do
  set -- $arm
  stage "bench eager $*" 40 230 "$LOG" "${BENCH[@]}" --arch "$1" --norm "$2" --shortcut "$3" --json "$WORK/key-$1-$2-$3.jsonl"
  cat "$WORK/key-$1-$2-$3.jsonl" >>"$OUT/bench-key.jsonl" 2>/dev/null
done
# The step modes of VGG38 BN+RC: eager (the key arm above), whole-step CUDA graph, compiled (last: it compiles cold).
KEY=(--arch vgg38 --norm bn --shortcut identity)
cat "$WORK/key-vgg38-bn-identity.jsonl" >>"$OUT/bench-modes.jsonl" 2>/dev/null
stage "bench graph step VGG38 BN+RC" 45 190 "$LOG" "${BENCH[@]}" "${KEY[@]}" --graph step --json "$WORK/modes-graph.jsonl"
cat "$WORK/modes-graph.jsonl" >>"$OUT/bench-modes.jsonl" 2>/dev/null
stage "compare eager" 120 250 "$OUT/compare.txt" "$PY" benchmarks/compare.py --device "$DEVICE" "${COMPARE[@]}" \
  --contenders "$CONTENDERS"
stage "bench eager grid" 90 190 "$LOG" "${BENCH[@]}" "${GRID[@]}" --json "$OUT/bench-grid.jsonl"

stage "train VGG38 BN+RC, 2 epochs" 120 70 "$LOG" \
  "$PY" -m ablate run ${RECIPE:-recipes/vgg38.toml} --norm bn --shortcut identity --dataset synthetic --epochs 2 \
  "${TRAIN_SIZES[@]}" --device "$DEVICE" --out "$WORK/train-run" -q
cp "$WORK/train-run/summary.json" "$OUT/train-summary.json" 2>/dev/null || log "no train summary.json"
cp "$WORK/train-run/metrics.csv" "$OUT/train-metrics.csv" 2>/dev/null || log "no train metrics.csv"

export TORCHINDUCTOR_CACHE_DIR="$WORK/inductor"
stage "bench compiled ($COMPILE) VGG38 BN+RC" 250 60 "$LOG" "${BENCH[@]}" "${KEY[@]}" --compile "$COMPILE" \
  --json "$WORK/modes-compiled.jsonl"
cat "$WORK/modes-compiled.jsonl" >>"$OUT/bench-modes.jsonl" 2>/dev/null
"$PY" - "$OUT/bench-modes.jsonl" <<'PY' 2>&1 | tee -a "$LOG"
import json, os, sys
rows = [json.loads(line) for line in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
print("VGG38 BN+RC training step | img/s | step ms | peak MiB | MFU % | compile/capture s | error")
for r in rows:
    fell_back = str(r["environment"].get("graph", "")).startswith("none (")  # --graph step where it cannot apply
    mode = ("graph step" if r.get("graph") == "step" else "eager (graph step not applied)" if fell_back
            else f"compile {r['compile']}" if r["compile"] else "eager")
    cells = [r["train_images_per_s"], r["train_step_ms_median"], (r["peak_memory_bytes"] or 0) / 2**20 or None,
             None if r.get("mfu") is None else 100 * r["mfu"], r["compile_seconds"]]
    print(" | ".join([mode, *("-" if c is None else f"{c:,.1f}" for c in cells), r["error"] or ""]))
PY

stage "compare compiled ($COMPILE)" 150 0 "$OUT/compare.txt" "$PY" benchmarks/compare.py --device "$DEVICE" \
  "${COMPARE[@]}" --arch "$COMPILED_ARCH" --contenders limit,ablate --compile "$COMPILE" --rounds 3
[[ -f "$OUT/compare.txt" ]] && grep -E "^[a-z0-9]+:|/" "$OUT/compare.txt" >>"$LOG"

rm -rf "$WORK"
log "done in $(($(date +%s) - START))s, $FAILED stage(s) failed; files: $(cd "$OUT" && echo *)"
exit $((FAILED > 0))
