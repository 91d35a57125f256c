"""Record what the original darknet-tiny (TFJS, run by node) computes on the tests' probe inputs.

    python -m tests.record_darknet_reference            # npm-installs @tensorflow/tfjs into a temp folder
    python -m tests.record_darknet_reference --tfjs-dir /tmp/tfjs   # a folder where it is installed

Writes tests/fixtures/darknet_tiny_reference.json: outputs of the original network on inputs the
test code makes itself (no weights, no data). tests/test_loss_networks.py compares the torch port
with it. Needs node >= 18, npm (or --tfjs-dir) and ../shared/models/darknet-tiny.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from sketch2face.training.darknet import FEATURE_LAYERS, FOLDER
from sketch2face.training.shared_models import default_models_root

from .test_loss_networks import DARKNET_REFERENCE, darknet_probe_inputs

TFJS_PACKAGE = "@tensorflow/tfjs@4.22.0"
SCRIPT = Path(__file__).parent / "fixtures" / "darknet_tiny_reference.mjs"


def record(tfjs_dir: Path, model_dir: Path, out: Path) -> dict:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        inputs = []
        for index, batch in enumerate(darknet_probe_inputs()):
            nhwc = np.ascontiguousarray(batch.transpose(0, 2, 3, 1), dtype="<f4")
            (work / f"input{index}.f32").write_bytes(nhwc.tobytes())
            inputs.append({"file": f"input{index}.f32", "shape": list(nhwc.shape)})
        (work / "request.json").write_text(json.dumps({"inputs": inputs, "taps": list(FEATURE_LAYERS)}))
        script = tfjs_dir / SCRIPT.name  # ES modules resolve packages from the script's own folder
        shutil.copy(SCRIPT, script)
        subprocess.run(["node", str(script), str(model_dir), str(work / "request.json"), str(out)], check=True)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tfjs-dir", type=Path, default=None, help=f"a folder with {TFJS_PACKAGE} in node_modules")
    parser.add_argument("--model-dir", type=Path, default=default_models_root() / FOLDER)
    parser.add_argument("--out", type=Path, default=DARKNET_REFERENCE)
    args = parser.parse_args()
    if args.tfjs_dir is not None:
        reference = record(args.tfjs_dir, args.model_dir, args.out)
    else:
        with tempfile.TemporaryDirectory() as tfjs_dir:
            subprocess.run(["npm", "install", "--prefix", tfjs_dir, "--no-audit", "--no-fund", TFJS_PACKAGE], check=True)
            reference = record(Path(tfjs_dir), args.model_dir, args.out)
    print(f"wrote {args.out} (tfjs {reference['tfjs_version']}, backend {reference['backend']}, "
          f"{len(reference['results'])} input batches)")


if __name__ == "__main__":
    main()
