#!/usr/bin/env bash
# Set up .venv/ if needed, then serve the app (http://127.0.0.1:7860/ unless GRADIO_SERVER_NAME/PORT say otherwise).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup_env.sh" app
cd "$ROOT"
exec "$ROOT/.venv/bin/python" app.py "$@"
