#!/usr/bin/env bash
# Create .venv/ at the repository root if missing and install what the app needs
# (`setup_env.sh app`) or the app plus the test tools (`setup_env.sh dev`).
#
# Idempotent and fast when nothing changed: each step leaves a stamp in .venv/ holding a
# hash of its requirement files, and is skipped while the hash matches.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
MODE="${1:-app}"
case "$MODE" in app|dev) ;; *) echo "usage: $0 [app|dev]" >&2; exit 2 ;; esac

log() { echo "[setup] $*" >&2; }

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

create_venv() {
    local python
    python="$(find_python)" || { log "error: Python 3.11 is needed (python3.11 not found)."; exit 1; }
    if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
        log "warning: $("$python" --version 2>&1) found; the Space and the pins target Python 3.11."
    fi
    log "creating $VENV with $("$python" --version 2>&1)"
    if ! "$python" -m venv "$VENV"; then
        rm -rf "$VENV"
        log "error: '$python -m venv' failed; on Debian/Ubuntu install python3.11-venv first."
        exit 1
    fi
}

# Hash of the files a step depends on (plus the interpreter version and this script).
step_hash() {
    { "$VENV/bin/python" --version 2>&1; cat "$ROOT/scripts/setup_env.sh" "$@"; } | sha256sum | cut -d' ' -f1
}

step_done() { [ -f "$VENV/.setup-$1" ] && [ "$(cat "$VENV/.setup-$1")" = "$2" ]; }

pin_of() {  # the exact pin of a package in requirements.txt, e.g. "torch==2.13.0"
    grep -E "^$1==" "$ROOT/requirements.txt" | head -n 1
}

pip_install() {
    # The grep drops pip's noise about unreachable extra-index folders of some machines' pip config.
    "$VENV/bin/python" -m pip install --quiet --no-input "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

[ -x "$VENV/bin/python" ] || create_venv

app_hash="$(step_hash "$ROOT/requirements.txt" "$ROOT/pyproject.toml")"
if step_done app "$app_hash"; then
    log "app requirements up to date (.venv/.setup-app)"
else
    log "installing the app's requirements into .venv/ (first run takes a few minutes)"
    # 1. torch first: basicsr's build imports it. 2. basicsr without build isolation, so pip
    # builds it against this torch instead of fetching a second (CUDA) one. 3. the rest.
    pip_install setuptools==84.2.1 wheel==0.48.0
    pip_install "$(pin_of torch)" "$(pin_of torchvision)"
    pip_install --no-build-isolation "$(pin_of basicsr)"
    pip_install -r "$ROOT/requirements.txt"
    # 4. this checkout as the sketch2face package (the `sketch2face` command), its pins already met.
    pip_install --no-deps --no-build-isolation --editable "$ROOT"
    echo "$app_hash" > "$VENV/.setup-app"
fi

if [ "$MODE" = dev ]; then
    dev_hash="$(step_hash "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt")"
    if step_done dev "$dev_hash"; then
        log "test requirements up to date (.venv/.setup-dev)"
    else
        log "installing the test requirements into .venv/"
        pip_install -r "$ROOT/requirements-dev.txt"
        echo "$dev_hash" > "$VENV/.setup-dev"
    fi
fi
