"""The ``sketch2face`` command: ``generate`` (one model load, one PNG per input, failures
reported) and the commands it hands to the training modules and the benchmark."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketch2face import __main__ as cli
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


def test_single_pass_skips_shift_averaging(tiny_model_dir, tmp_path, monkeypatch):
    from sketch2face.pipeline import Sketch2Face

    drawing = write_drawing(tmp_path / "drawing.png")
    built = []
    original = Sketch2Face.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        built.append(original(cls, *args, **kwargs))
        return built[-1]

    monkeypatch.setattr(Sketch2Face, "from_pretrained", classmethod(recording))
    faces = {}
    for flags in ([], ["--single-pass"]):
        out = tmp_path / ("single" if flags else "averaged")
        assert main(["generate", "--model", str(tiny_model_dir), "-o", str(out), *flags, str(drawing)]) == 0
        faces[bool(flags)] = np.asarray(Image.open(out / "drawing.png"), dtype=float)
    assert [model.shift_average for model in built] == [True, False]
    # The two passes differ where the network is not shift-equivariant, so the faces do too.
    assert faces[True].shape == faces[False].shape and np.abs(faces[True] - faces[False]).mean() > 0.1


def test_unloadable_model_exits_2_with_one_line(tmp_path, capsys):
    status = main(["generate", "--model", str(tmp_path / "missing"), str(write_drawing(tmp_path / "a.png"))])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.startswith("error: ") and "\n" not in err


def test_module_entry_point_runs_as_documented(tiny_model_dir, tmp_path, monkeypatch, capsys):
    sketch = write_drawing(tmp_path / "sketch.png")
    argv = ["sketch2face", "generate", "--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "faces"), str(sketch)]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.delitem(sys.modules, "sketch2face.__main__")  # run it fresh, as `python -m` does
    with pytest.raises(SystemExit) as exit:
        runpy.run_module("sketch2face", run_name="__main__", alter_sys=True)  # what `python -m sketch2face` runs
    assert exit.value.code == 0, capsys.readouterr().err
    assert capsys.readouterr().out.splitlines()[-1] == str(tmp_path / "faces" / "sketch.png")
    assert Image.open(tmp_path / "faces" / "sketch.png").mode == "RGB"


def test_help_lists_every_command_without_loading_torch():
    # A fresh interpreter: what a user typing `sketch2face --help` gets, and how fast (no torch import).
    probe = "import sys; from sketch2face.__main__ import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    finished = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    for command in ("generate", "train", "evaluate", "export", "bench", "train-upscaler", "evaluate-upscaler"):
        assert command in finished.stdout
    assert finished.stdout.splitlines()[-1] == "False"


@pytest.mark.parametrize(("command", "option"), [("train", "--init-from"), ("evaluate", "--select"), ("export", "--checkpoint"),
                                                 ("bench", "--skip-app"), ("train-upscaler", "--resume"),
                                                 ("evaluate-upscaler", "--examples-grid")])
def test_other_commands_hand_their_arguments_to_their_module(command, option, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: ") and option in usage


def test_bench_outside_a_clone_says_where_the_benchmark_is(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "CHECKOUT", tmp_path)  # an installed wheel: no benchmarks/ beside the package
    assert main(["bench"]) == 2
    assert "the benchmark lives in a clone of the repository" in capsys.readouterr().err
