"""Alignment between the generator's canvas and GFPGAN's 512x512 face template, and the paste back.

No face-detection network: the generator draws the face at (about) the same place on its canvas,
so one fixed similarity transform maps the canvas onto GFPGAN's FFHQ template (least squares over
five facial points, preprocess.CANVAS_FACE_POINTS against facexlib's template). Drawings shift the
face by up to ~18 canvas px, so when dlib's landmarks are at hand they refine that per face, within
sanity bounds. The restored face is warped back into the 2x (Lanczos) upscaled canvas and blended
in with a feathered mask.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from .. import preprocess
from ..errors import RestorationUnavailable
from ..preprocess import CANVAS_SIZE, similarity_transform

# GFPGAN's 512x512 FFHQ template (facexlib): eye centres, nose tip, mouth corners.
GFPGAN_TEMPLATE_5 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935], [201.26117, 371.41043], [313.08905, 371.15118]]
)
# The same five points on the generator's canvas.
CANVAS_FACE_POINTS = np.array(preprocess.CANVAS_FACE_POINTS)
FACE_SIZE = 512
UPSCALE = 2
FEATHER_PX = 12  # output pixels over which the restored face fades into the upscaled canvas


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


CANVAS_TO_TEMPLATE = similarity_transform(CANVAS_FACE_POINTS, GFPGAN_TEMPLATE_5)
# How far a face found by landmarks may sit from the canonical framing before it is distrusted.
MAX_LANDMARK_SHIFT_PX = 48.0  # canvas pixels, eye midpoint
MAX_LANDMARK_ROTATION_DEG = 20.0
LANDMARK_SCALE_RANGE = (0.75, 1.35)


def _pixels_to_canvas(height: int, width: int) -> np.ndarray:
    """3x3: pixel coordinates of a canvas-framed image of this size -> canvas coordinates."""
    canvas_width, canvas_height = CANVAS_SIZE
    if not math.isclose(width / height, canvas_width / canvas_height, rel_tol=0.02):
        raise RestorationUnavailable(
            f"Face restoration expects the generator's {canvas_width}x{canvas_height} framing, got a {width}x{height} image."
        )
    # Pixel centres: canvas x_c + 0.5 = (x + 0.5) * canvas_width / width.
    factor = canvas_width / width
    return np.array([[factor, 0.0, 0.5 * factor - 0.5], [0.0, factor, 0.5 * factor - 0.5], [0.0, 0.0, 1.0]])


def face_to_template(height: int, width: int) -> np.ndarray:
    """The fixed 2x3 affine from a canvas-framed image of this size (any multiple of the canvas)
    to GFPGAN's 512 template."""
    return CANVAS_TO_TEMPLATE @ _pixels_to_canvas(height, width)


def landmarks_to_template(points: np.ndarray, height: int, width: int) -> np.ndarray | None:
    """2x3 face -> template affine that puts this face's 5 landmarks (pixels, in the order of
    CANVAS_FACE_POINTS) where the canonical canvas face sits; None when the fit is implausible."""
    to_canvas = _pixels_to_canvas(height, width)
    canvas_points = points @ to_canvas[:2, :2].T + to_canvas[:2, 2]
    correction = similarity_transform(canvas_points, CANVAS_FACE_POINTS)
    scale = math.hypot(correction[0, 0], correction[1, 0])
    rotation = math.degrees(math.atan2(correction[1, 0], correction[0, 0]))
    shift = np.linalg.norm(canvas_points[:2].mean(0) - CANVAS_FACE_POINTS[:2].mean(0))
    plausible = LANDMARK_SCALE_RANGE[0] <= scale <= LANDMARK_SCALE_RANGE[1]
    plausible &= abs(rotation) <= MAX_LANDMARK_ROTATION_DEG and shift <= MAX_LANDMARK_SHIFT_PX
    if not plausible:
        return None
    return CANVAS_TO_TEMPLATE @ _homogeneous(correction) @ to_canvas


def _output_to_template(face_matrix: np.ndarray) -> np.ndarray:
    """face -> template affine, re-expressed for the UPSCALE x output (pixel centres kept)."""
    output_to_face = np.array([[1 / UPSCALE, 0.0, 0.5 / UPSCALE - 0.5], [0.0, 1 / UPSCALE, 0.5 / UPSCALE - 0.5], [0.0, 0.0, 1.0]])
    return face_matrix @ output_to_face


@functools.lru_cache(maxsize=8)
def _paste_mask(height: int, width: int, output_to_template: tuple[float, ...]) -> np.ndarray:
    """Float (H, W, 1) weight of the restored face in the upscaled frame: 1 inside the template
    square, fading to 0 over FEATHER_PX at its edges that fall inside the frame."""
    inside = cv2.warpAffine(
        np.ones((FACE_SIZE, FACE_SIZE), np.float32),
        np.array(output_to_template).reshape(2, 3),
        (width, height),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    # Erode away from the template's edges (the frame's border is not an edge), then blur.
    eroded = cv2.erode(inside, np.ones((2 * FEATHER_PX + 1, 2 * FEATHER_PX + 1), np.uint8), borderType=cv2.BORDER_REPLICATE)
    mask = cv2.GaussianBlur(eroded, (0, 0), sigmaX=FEATHER_PX / 2.0, borderType=cv2.BORDER_REPLICATE)
    mask.setflags(write=False)
    return mask[..., None]


def crop_to_template(face: np.ndarray, matrix: np.ndarray | None = None) -> np.ndarray:
    """The face warped into GFPGAN's 512x512 template (uint8 RGB), by ``matrix`` (face ->
    template, default: the fixed canvas alignment). Strips the face doesn't cover replicate its border."""
    if matrix is None:
        matrix = face_to_template(*face.shape[:2])
    return cv2.warpAffine(face, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def paste_back(face: np.ndarray, restored: np.ndarray, matrix: np.ndarray | None = None,
               upscaled: np.ndarray | None = None) -> np.ndarray:
    """Upscale the face UPSCALE x and blend the restored template face over it; ``matrix`` is the
    face -> template affine the crop was made with. ``upscaled``: the face already at UPSCALE x
    (the upscaler's), used instead of a Lanczos resize around the restored face."""
    if matrix is None:
        matrix = face_to_template(*face.shape[:2])
    height, width = face.shape[0] * UPSCALE, face.shape[1] * UPSCALE
    output_to_template = _output_to_template(matrix)
    if upscaled is not None and upscaled.shape != (height, width, 3):
        raise ValueError(f"the upscaled face must be {UPSCALE}x the face, {(height, width, 3)}, not {upscaled.shape}")
    background = upscaled if upscaled is not None else cv2.resize(face, (width, height), interpolation=cv2.INTER_LANCZOS4)
    restored_in_frame = cv2.warpAffine(
        restored, output_to_template, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    mask = _paste_mask(height, width, tuple(np.round(output_to_template, 6).ravel().tolist()))
    blended = restored_in_frame.astype(np.float32) * mask + background.astype(np.float32) * (1.0 - mask)
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)

