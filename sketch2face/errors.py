"""Exceptions whose message is written for the person who caused them (one line, no traceback)."""


class Sketch2FaceError(Exception):
    """Base class: str(error) is a complete, user-facing sentence."""


class InputError(Sketch2FaceError, ValueError):
    """The input can't be turned into a sketch (blank, unreadable, too large, ...)."""


class ModelLoadError(Sketch2FaceError, RuntimeError):
    """The generator weights could not be found, downloaded or read."""


class RestorationUnavailable(Sketch2FaceError, RuntimeError):
    """GFPGAN could not run (no weights and offline, a bad file, a face it can't align, ...)."""


# The fix a skipped restoration names: a local GFPGANv1.4.pth, used as is and never downloaded.
GFPGAN_PATH_ENV = "SKETCH2FACE_GFPGAN_PATH"
