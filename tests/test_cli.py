"""``python -m sketch2face generate``: one model load, one PNG per input, failures reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from sketch2face.__main__ import main

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_drawing(path: Path, size=(256, 320)) -> Path:
    image = Image.new("L", size, 255)
    w, h = size
    draw = ImageDraw.Draw(image)
    draw.ellipse((w * 0.2, h * 0.1, w * 0.8, h * 0.85), outline=0, width=3)
    draw.ellipse((w * 0.33, h * 0.4, w * 0.45, h * 0.46), outline=0, width=3)
    draw.ellipse((w * 0.55, h * 0.4, w * 0.67, h * 0.46), outline=0, width=3)
    draw.arc((w * 0.37, h * 0.62, w * 0.63, h * 0.74), 20, 160, fill=0, width=3)
    image.save(path)
    return path


def test_generates_one_png_per_input_and_reports_failures(tiny_model_dir, tmp_path, capsys):
    good = write_drawing(tmp_path / "good.png")
    wide = write_drawing(tmp_path / "wide.jpg", size=(400, 300))
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    out = tmp_path / "out"
    status = main(["generate", "--model", str(tiny_model_dir), "-o", str(out), str(good), str(bad), str(wide)])
    captured = capsys.readouterr()
    assert status == 1  # one input failed ...
    assert sorted(path.name for path in out.iterdir()) == ["good.png", "wide.png"]  # ... the others ran
    assert f"{bad}: error: The file is not an image we can read" in captured.err
    # The written files, one a line, in input order (huggingface_hub may print a line before them).
    assert captured.out.splitlines()[-2:] == [str(out / "good.png"), str(out / "wide.png")]
    with Image.open(out / "wide.png") as face:
        assert face.mode == "RGB" and face.size[0] > face.size[1]


def test_all_good_inputs_exit_zero_and_notes_go_to_stderr(tiny_model_dir, tmp_path, capsys):
    inverted = tmp_path / "chalk.png"
    write_drawing(inverted)
    Image.fromarray(255 - np.asarray(Image.open(inverted))).save(inverted)
    assert main(["generate", "--model", str(tiny_model_dir), "-o", str(tmp_path / "out"), str(inverted)]) == 0
    assert "note: Light lines on a dark background were detected and inverted." in capsys.readouterr().err


def test_unloadable_model_exits_2_with_one_line(tmp_path, capsys):
    status = main(["generate", "--model", str(tmp_path / "missing"), str(write_drawing(tmp_path / "a.png"))])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("error: ") and "\n" not in err


def test_module_entry_point_runs_as_documented(tiny_model_dir, tmp_path):
    sketch = write_drawing(tmp_path / "sketch.png")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, "-m", "sketch2face", "generate", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "faces"), str(sketch)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == str(tmp_path / "faces" / "sketch.png")
    assert Image.open(tmp_path / "faces" / "sketch.png").mode == "RGB"
