"""Where the third-party pretrained networks lie (../shared/models, never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

MODELS_ENV = "SKETCH2FACE_MODELS"


def default_models_root() -> Path:
    """$SKETCH2FACE_MODELS, else ../shared/models next to the repository (as data.default_data_root)."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    return Path(__file__).resolve().parents[3] / "shared" / "models"


def require_file(path: Path, what: str) -> Path:
    """The path, or a one-line FileNotFoundError saying what is missing and where to point."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path} (set ${MODELS_ENV} to the shared models folder)")
    return path
