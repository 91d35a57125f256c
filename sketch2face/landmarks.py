"""dlib's face detector and landmark models, for everything that looks for facial points.

They come from the optional packages ``dlib-bin`` and ``face-recognition-models`` (installed
with the ``[train]`` and ``[dev]`` extras). Creating a detector raises ImportError or
RuntimeError when they are missing; callers decide what to do without them.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np


def model_path(name: str) -> Path:
    """A model file shipped by face-recognition-models, e.g. 'shape_predictor_68_face_landmarks.dat'."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise ImportError("face_recognition_models is not installed")
    return Path(spec.origin).parent / "models" / name


class FaceDetector:
    """dlib's HOG frontal face detector. dlib makes no thread-safety promise, so calls are serialised."""

    def __init__(self, upsample_times: int = 1):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._upsample_times = upsample_times  # 1 finds small faces; 0 is ~4x faster where faces fill the frame
        self._lock = threading.Lock()

    def largest_face(self, image: np.ndarray):
        """The largest face's dlib.rectangle in a uint8 RGB or grey image, or None."""
        image = np.ascontiguousarray(image)  # dlib misreads strided arrays (e.g. a permuted tensor's)
        with self._lock:
            boxes = self._detector(image, self._upsample_times)
        return max(boxes, key=lambda box: box.area()) if boxes else None


class LandmarkDetector(FaceDetector):
    """The largest face's 68 landmarks (dlib's layout), float32 (68, 2) pixel coordinates, or None."""

    def __init__(self, upsample_times: int = 1):
        import dlib

        super().__init__(upsample_times)
        self._predictor = dlib.shape_predictor(str(model_path("shape_predictor_68_face_landmarks.dat")))

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        image = np.ascontiguousarray(image)
        box = self.largest_face(image)
        if box is None:
            return None
        with self._lock:
            shape = self._predictor(image, box)
        return np.array([[point.x, point.y] for point in shape.parts()], dtype=np.float32)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """68 landmarks -> eye centres (mean of each eye's 6 points), nose tip, mouth corners: float64 (5, 2)."""
    points = np.asarray(landmarks, dtype=np.float64)
    return np.array([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])
