"""Command line: ``sketch2face COMMAND ...`` (or ``python -m sketch2face COMMAND ...``).

    sketch2face generate [--enhance] [--single-pass] [--output-dir DIR] IMAGE...   sketches -> faces
    sketch2face train ...      sketch2face.training.train (needs the [train] extra)
    sketch2face evaluate ...   sketch2face.training.evaluate
    sketch2face export ...     sketch2face.training.export
    sketch2face train-upscaler / evaluate-upscaler ...   the x2 upscaler's training and evaluation
    sketch2face bench ...      the benchmark in a clone's benchmarks/ folder

``generate`` writes DIR/<stem>.png for every input. The model is loaded once. An input that fails
is reported on stderr with its reason and the others still run; the exit status is 1 if any failed.
The other commands take their own options (``sketch2face train --help``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .errors import Sketch2FaceError

PROG = "sketch2face"
CHECKOUT = Path(__file__).resolve().parent.parent  # the clone, when the package runs from one
# Commands that hand their arguments to another module's main(argv).
DELEGATED = {
    "train": ("sketch2face.training.train", "train the pix2pix generator (the [train] extra)"),
    "evaluate": ("sketch2face.training.evaluate", "metrics and grids on the held-out data"),
    "export": ("sketch2face.training.export", "a checkpoint -> weights folder with its model card"),
    "train-upscaler": ("sketch2face.training.train_upscaler", "train the x2 face upscaler (on photos, or on the generator's own faces)"),
    "evaluate-upscaler": ("sketch2face.training.evaluate_upscaler", "the upscaler against plain resizing"),
    "bench": ("benchmarks.bench", "the benchmark (from a clone: benchmarks/ is not installed)"),
}


def generate_command(args: argparse.Namespace) -> int:
    from .pipeline import Sketch2Face

    try:
        model = Sketch2Face.from_pretrained(args.model, device=args.device, shift_average=not args.single_pass)
    except Sketch2FaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.output_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for source in args.images:
        target = args.output_dir / f"{Path(source).stem}.png"
        try:
            result = model.generate(source, enhance=args.enhance)
        except Sketch2FaceError as error:
            failures += 1
            print(f"{source}: error: {error}", file=sys.stderr)
            continue
        result.image.save(target)
        for note in result.notes:
            print(f"{source}: note: {note}", file=sys.stderr)
        print(target)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Sketch to face generation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    generate = commands.add_parser("generate", help="turn sketches into faces")
    generate.add_argument("images", nargs="+", help="sketch image files")
    generate.add_argument("--output-dir", "-o", type=Path, default=Path("outputs"))
    generate.add_argument("--enhance", action="store_true", help="restore the face with GFPGAN (downloads it once)")
    generate.add_argument("--model", default=None, help="weights folder or Hub repo id (default: $SKETCH2FACE_MODEL, then weights/)")
    generate.add_argument("--device", default="cpu")
    generate.add_argument("--single-pass", action="store_true",
                          help="one generator pass, not the mean over shifted copies of the drawing (quicker, keeps the grid)")
    generate.set_defaults(handler=generate_command)
    for name, (_, summary) in DELEGATED.items():
        commands.add_parser(name, help=summary, add_help=False)  # listed here, parsed by its module
    return parser


def run_delegated(name: str, argv: list[str]) -> int:
    module_name = DELEGATED[name][0]
    if name == "bench":
        if not (CHECKOUT / "benchmarks" / "bench.py").is_file():
            print(f"error: the benchmark lives in a clone of the repository (benchmarks/), not in the installed "
                  f"package; run `{PROG} bench` from a clone or an editable install.", file=sys.stderr)
            return 2
        if str(CHECKOUT) not in sys.path:
            sys.path.insert(0, str(CHECKOUT))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        print(f"error: {PROG} {name} needs {error.name or error}: pip install -e '.[train]'", file=sys.stderr)
        return 2
    program, sys.argv[0] = sys.argv[0], f"{PROG} {name}"  # what its argparse prints as the usage
    try:
        status = module.main(argv)
    finally:
        sys.argv[0] = program
    return status if isinstance(status, int) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        return run_delegated(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
