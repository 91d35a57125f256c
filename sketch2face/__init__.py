"""sketch2face: turn a drawing of a face into a photorealistic face (pix2pix + optional GFPGAN)."""

from .errors import InputError, ModelLoadError, Sketch2FaceError

__all__ = ["Sketch2Face", "GenerationResult", "Restoration", "InputError", "ModelLoadError", "Sketch2FaceError"]
__version__ = "0.1.0"


def __getattr__(name):
    # Importing torch is slow: only pay for it when the pipeline is actually used.
    if name in ("Sketch2Face", "GenerationResult", "Restoration"):
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)
