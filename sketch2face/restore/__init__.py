"""GFPGAN v1.4 face restoration for generated faces: sharper eyes, skin and hair, at 2x.

    from sketch2face.restore import FaceRestorer
    restorer = FaceRestorer(device="cpu")   # cheap: nothing is loaded or downloaded here
    big = restorer.restore(face)            # uint8 RGB (320, 256, 3) canvas face -> (640, 512, 3)

One job per module (details and numbers in docs/gfpgan.md):

* :mod:`.weights`: where the checkpoint comes from (a local file, or the official file downloaded
  once into a cache, sha256-pinned);
* :mod:`.network`: reading a checkpoint safely and working out its architecture;
* :mod:`sketch2face.fastpath_gfpgan`: the CPU-friendly forward, beside the generator's fast path;
* :mod:`.alignment`: the canvas <-> GFPGAN template geometry and the paste back;
* :mod:`.restorer`: :class:`FaceRestorer`, which puts them together.

Failures (no weights and offline, hash mismatch, unreadable file, unexpected input) raise
:class:`RestorationUnavailable`, a :class:`~sketch2face.errors.Sketch2FaceError` with a one-line
reason; the pipeline turns it into a note and keeps the unrestored face.
"""

from ..errors import RestorationUnavailable
from .restorer import FaceRestorer

__all__ = ["FaceRestorer", "RestorationUnavailable"]
