"""Make ``import torchvision`` (and so basicsr, facexlib, gfpgan) work with a CPU-only torch.

PyPI's torchvision 0.28.0 wheel is built against CUDA torch. Next to the CPU build of torch its
compiled extension (``torchvision/_C.so``) fails to load, and ``import torchvision`` then dies
with ``operator torchvision::nms does not exist``: ``torchvision/_meta_registrations.py``
registers fake kernels for ``nms`` and ``qnms`` unconditionally. basicsr 1.4.2 also imports
``torchvision.transforms.functional_tensor``, renamed ``_functional_tensor`` in torchvision 0.17.

Import this module before anything imports torchvision. It

* defines ``torchvision::nms`` / ``torchvision::qnms`` (same schemas as torchvision's C++
  code) with a pure-torch CPU kernel, **only** when the compiled extension can't be loaded;
  with a working extension the ops are left exactly as torchvision registers them;
* lets ``torchvision.ops.nms`` use that kernel (its ``_assert_has_ops`` guard would refuse);
* aliases ``torchvision.transforms.functional_tensor`` to ``_functional_tensor`` when the old
  name is gone (lazily: torchvision is not imported for it).

It is idempotent: importing or calling :func:`install` again does nothing more.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

NMS_SCHEMA = "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
QNMS_SCHEMA = "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"

_install_lock = threading.Lock()
_installed = False
# Set when this module (not torchvision) defined the ops; keeps the Library alive.
_fallback_library: torch.library.Library | None = None


def op_exists(qualified_name: str) -> bool:
    """True when the dispatcher knows ``namespace::name`` (from any library)."""
    try:
        torch._C._dispatch_find_schema_or_throw(qualified_name, "")
    except RuntimeError:
        return False
    return True


def _extension_path() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = package_dir / f"_C{suffix}"
        if candidate.is_file():
            return candidate
    return None


def native_extension_loads() -> bool:
    """Load torchvision's compiled ops the way torchvision does; True if that works.

    Loading here is harmless: torchvision loads the same file again on import (a no-op for the
    dynamic loader), and it is what registers the native ``torchvision::nms``.
    """
    if "torchvision.extension" in sys.modules:
        return bool(sys.modules["torchvision.extension"]._has_ops())
    path = _extension_path()
    if path is None:
        return False
    try:
        torch.ops.load_library(str(path))
    except (OSError, ImportError, RuntimeError) as error:
        logger.debug("torchvision's compiled extension does not load (%s); using the pure-torch nms.", error)
        return False
    return op_exists("torchvision::nms")


def _box_areas(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms_reference_kernel(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS, the semantics of torchvision's CPU kernel, in plain torch.

    Boxes are (x1, y1, x2, y2); returns int64 indices of kept boxes by decreasing score. A box is
    dropped when its IoU with an already kept, higher-scoring box is > ``iou_threshold``.
    """
    if dets.dim() != 2 or dets.size(1) != 4:
        raise RuntimeError(f"boxes should be a 2d tensor of shape [N, 4], got {tuple(dets.shape)}")
    if scores.dim() != 1 or scores.size(0) != dets.size(0):
        raise RuntimeError(f"scores should be a 1d tensor of {dets.size(0)} elements, got {tuple(scores.shape)}")
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    # Quantized callers pass int_repr() tensors: IoU is scale-free, so compute it in float.
    boxes = dets.double() if not dets.is_floating_point() else dets
    order = torch.sort(scores, descending=True, stable=True).indices
    boxes = boxes[order]
    areas = _box_areas(boxes)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for index in range(len(order)):
        if suppressed[index]:
            continue
        keep.append(index)
        # IoU of this kept box with every lower-scoring one: O(N) memory, O(N * kept) time.
        rest = boxes[index + 1 :]
        top_left = torch.maximum(rest[:, :2], boxes[index, :2])
        bottom_right = torch.minimum(rest[:, 2:], boxes[index, 2:])
        wh = (bottom_right - top_left).clamp(min=0)
        inter = wh[:, 0] * wh[:, 1]
        iou = inter / (areas[index] + areas[index + 1 :] - inter)
        suppressed[index + 1 :] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def _define_fallback_ops() -> None:
    global _fallback_library
    library = torch.library.Library("torchvision", "DEF")
    library.define(NMS_SCHEMA)
    library.define(QNMS_SCHEMA)
    library.impl("nms", nms_reference_kernel, "CPU")
    library.impl("qnms", nms_reference_kernel, "CPU")
    _fallback_library = library


class _RenamedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``import torchvision.transforms.functional_tensor`` with ``_functional_tensor``.

    It sits last on ``sys.meta_path``: a torchvision that still ships the old module wins, and
    nothing is imported until someone asks for the old name.
    """

    old_name = "torchvision.transforms.functional_tensor"
    new_name = "torchvision.transforms._functional_tensor"

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.old_name or importlib.util.find_spec(self.new_name) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(self.new_name)  # the very same module object

    def exec_module(self, module):
        pass


def _alias_functional_tensor() -> None:
    if not any(isinstance(finder, _RenamedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_RenamedModuleFinder())


def _let_torchvision_call_fallback_nms() -> None:
    import torchvision.ops.boxes as boxes

    if getattr(boxes._assert_has_ops, "_sketch2face_fallback", False):
        return

    # boxes.py guards nms/qnms (ours now) and box_iou_rotated (still missing: it then fails
    # with "operator torchvision::box_iou_rotated does not exist", which is as clear).
    def assert_has_fallback_ops() -> None:
        if not op_exists("torchvision::nms"):
            raise RuntimeError("torchvision::nms is not registered.")

    assert_has_fallback_ops._sketch2face_fallback = True
    boxes._assert_has_ops = assert_has_fallback_ops


def install() -> bool:
    """Apply the fixes this environment needs. Returns True when the pure-torch ops are in use."""
    global _installed
    with _install_lock:
        if not _installed:
            if not op_exists("torchvision::nms") and not native_extension_loads():
                _define_fallback_ops()
                logger.info("torchvision's compiled ops are unavailable; registered a pure-torch CPU nms.")
            if _fallback_library is not None:
                _let_torchvision_call_fallback_nms()
            _alias_functional_tensor()
            _installed = True
    return _fallback_library is not None


install()
