#!/usr/bin/env bash
# One GPU acceptance run (benchmarks/README_train_gpu.md, "gpu_check"): installs the carried wheels of
# benchmarks/gpu_wheels.txt from .whl/ (no index, no network), then runs benchmarks/gpu_check.py.
#   benchmarks/gpu_check.sh [--tiny] [--out DIR] [--budget-s S] [--peak-tflops T]
# With --tiny (CPU, CI) the running Python's own packages are used and nothing is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
tiny=0
for arg in "$@"; do [ "$arg" = "--tiny" ] && tiny=1; done
if [ "$tiny" = 0 ]; then
    missing=$(sed -e 's/#.*//' -e '/^\s*$/d' benchmarks/gpu_wheels.txt | while read -r req; do
        name=${req%%==*}; version=${req##*==}
        ls .whl/"${name//-/_}"-"$version"-*.whl >/dev/null 2>&1 || echo "$req"; done)
    if [ -n "$missing" ]; then
        echo "error: .whl/ lacks $(echo $missing): run 'make gpu-wheels' here and carry .whl" >&2
        exit 2
    fi
    site="${GPU_CHECK_SITE:-/tmp/gpu_check_site}"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PY" benchmarks/gpu_check.py "$@"
