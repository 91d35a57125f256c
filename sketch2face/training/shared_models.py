"""Where the third-party data and pretrained networks lie (../shared, never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "SKETCH2FACE_DATA"
MODELS_ENV = "SKETCH2FACE_MODELS"


def shared_folder(name: str, env: str) -> Path:
    """$env if set, else ../shared/<name> beside the checkout the package runs from."""
    if os.environ.get(env):
        return Path(os.environ[env])
    return Path(__file__).resolve().parents[3] / "shared" / name


def default_models_root() -> Path:
    return shared_folder("models", MODELS_ENV)


def require_file(path: Path, what: str) -> Path:
    """The path, or a one-line FileNotFoundError saying what is missing and where to point."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found at {path} (set ${MODELS_ENV} to the shared models folder)")
    return path
