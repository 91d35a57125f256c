"""Run the original darknet-tiny (TFJS) in node on inputs the tests make, for the port's test.

Its outputs are computed at test time, never stored: they derive from the third-party weights.
scripts/run_tests.sh npm-installs the pure-JS @tensorflow/tfjs into the git-ignored TFJS_DIR.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

TFJS_PACKAGE = "@tensorflow/tfjs@4.22.0"  # scripts/run_tests.sh installs the same
TFJS_DIR = Path(__file__).resolve().parent.parent / ".cache" / "tfjs"
SCRIPT = Path(__file__).parent / "darknet_tiny_reference.mjs"


def tfjs_available() -> bool:
    return shutil.which("node") is not None and (TFJS_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir()


def darknet_reference(model_dir: Path, inputs: list[np.ndarray], taps: tuple[str, ...]) -> dict:
    """The original model's logits and per-channel means at ``taps`` for each NCHW [0, 1] batch."""
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        requests = []
        for index, batch in enumerate(inputs):
            nhwc = np.ascontiguousarray(batch.transpose(0, 2, 3, 1), dtype="<f4")
            (work / f"input{index}.f32").write_bytes(nhwc.tobytes())
            requests.append({"file": f"input{index}.f32", "shape": list(nhwc.shape)})
        (work / "request.json").write_text(json.dumps({"inputs": requests, "taps": list(taps)}))
        script = TFJS_DIR / SCRIPT.name  # ES modules resolve packages from the script's own folder
        shutil.copy(SCRIPT, script)
        subprocess.run(["node", str(script), str(model_dir), str(work / "request.json"), str(work / "out.json")],
                       check=True, capture_output=True, timeout=300)
        return json.loads((work / "out.json").read_text())
