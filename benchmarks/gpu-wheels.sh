#!/usr/bin/env bash
# Fill .whl/ (ignored by git) with the pure-Python wheels that benchmarks/gpu.sh needs and the GPU
# machine lacks, for its Python (3.12 on the H200 image): run here, with network access to PyPI, then
# call the device tool with carry [".whl"]. Default: tomli-w, the one dependency missing there, and
# Lightning (benchmark-only, compare.py's fourth contender) with its pure-Python requirements.
#   benchmarks/gpu-wheels.sh [NAME==VERSION ...]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
wheels=("$@")
((${#wheels[@]})) || wheels=(tomli-w lightning pytorch-lightning torchmetrics lightning-utilities)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${GPU_PYTHON:-3.12}" \
  --implementation cp -d .whl "${wheels[@]}"
ls .whl
