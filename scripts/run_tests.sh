#!/usr/bin/env bash
# Set up .venv/ with the test tools if needed (with Debian's chromium for the browser test and
# @tensorflow/tfjs for the darknet-tiny port test),
# then run pytest. Arguments go to pytest; without any, the whole suite runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh" dev

if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing Debian chromium for the browser test" >&2
        apt-get update -qq </dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium </dev/null >/dev/null
    else
        echo "[setup] warning: chromium is not installed and this is not root: the browser test cannot run (sudo apt-get install chromium)" >&2
    fi
fi

# The original darknet-tiny runs in node for its port's test (tests/tfjs_reference.py); git-ignored.
TFJS_DIR="$ROOT/.cache/tfjs"
if [ ! -d "$TFJS_DIR/node_modules/@tensorflow/tfjs" ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "[setup] installing @tensorflow/tfjs into .cache/tfjs for the darknet-tiny port test" >&2
        npm install --prefix "$TFJS_DIR" --no-audit --no-fund --loglevel=error @tensorflow/tfjs@4.22.0 </dev/null >/dev/null
    else
        echo "[setup] warning: npm is missing: the darknet-tiny port test cannot run (apt-get install nodejs npm)" >&2
    fi
fi

cd "$ROOT"
# Tests never reach the network: no telemetry, no Hub.
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
if [ "$#" -eq 0 ]; then
    set -- tests
fi
# File order, so a failure reruns the same way. SKETCH2FACE_TEST_ORDER=random shuffles it with
# pytest-randomly, which prints its seed: add --randomly-seed=N to rerun that order.
order=(-p no:randomly)
if [ "${SKETCH2FACE_TEST_ORDER:-}" = random ]; then
    order=()
fi
exec "$ROOT/.venv/bin/python" -m pytest -ra --timeout=900 "${order[@]}" "$@"
