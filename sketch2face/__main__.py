"""Command line: ``python -m sketch2face generate [--enhance] [--output-dir DIR] IMAGE...``

Writes DIR/<stem>.png for every input. The model is loaded once. An input that fails is
reported on stderr with its reason and the others still run; the exit status is 1 if any failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import Sketch2FaceError


def generate_command(args: argparse.Namespace) -> int:
    from .pipeline import Sketch2Face

    try:
        model = Sketch2Face.from_pretrained(args.model, device=args.device)
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
    parser = argparse.ArgumentParser(prog="python -m sketch2face", description="Sketch to face generation.")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="turn sketches into faces")
    generate.add_argument("images", nargs="+", help="sketch image files")
    generate.add_argument("--output-dir", "-o", type=Path, default=Path("outputs"))
    generate.add_argument("--enhance", action="store_true", help="restore the face with GFPGAN (downloads it once)")
    generate.add_argument("--model", default=None, help="weights folder or Hub repo id (default: $SKETCH2FACE_MODEL, then weights/)")
    generate.add_argument("--device", default="cpu")
    generate.set_defaults(handler=generate_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
