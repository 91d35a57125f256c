"""What the numbers were measured on: every benchmark report names the CPU."""

from sketch2face.training.machine import cpu_description

__all__ = ["cpu_description"]
