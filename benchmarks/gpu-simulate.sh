#!/usr/bin/env bash
# Prove benchmarks/gpu.sh on the CPU, as the GPU machine will run it (CI runs this): a fresh virtual
# environment that sees the installed packages except ablate itself, its first-party plugins and
# tomli-w, which gpu.sh must bring from the checkout and from .whl/. Every stage must end with rc 0.
#   benchmarks/gpu-simulate.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=${1:-$tmp/out}
python3 -m venv --system-site-packages "$tmp/venv"
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp benchmarks/gpu_sim_hide.py "$site/sitecustomize.py"
ls .whl/tomli_w-*.whl .whl/lightning-*.whl >/dev/null 2>&1 || bash benchmarks/gpu-wheels.sh
export ABLATE_HIDE=ablate,ablate_dense,ablate_extra_norms,ablate_gradamp,ablate_mlflow,ablate_wandb,tomli_w
if ABLATE_HIDE=tomli_w "$tmp/venv/bin/python" -c "import tomli_w" 2>/dev/null; then
  echo "gpu-simulate: tomli_w is not hidden" >&2; exit 1
fi
env -u PYTHONPATH PYTHON="$tmp/venv/bin/python" SIMULATE_CPU=1 bash benchmarks/gpu.sh "$out"
echo "gpu-simulate: every stage of benchmarks/gpu.sh ended with rc 0"
