"""Dense vision pre-training task interface: images with a label per vision token.

A real π0.5 starts from a vision tower pre-trained on web-scale data (SigLIP inside PaliGemma). A
*vision task* is the stand-in a toolkit can run itself: images whose every grid cell is labelled
(what is there, where inside the cell), so ``train.vision_pretrain`` can train the encoder's features
with one linear probe per target before the policy stages start.

Build context: ``Config.build()`` takes nothing. Labels are laid out on the encoder's token grid,
row-major from the top-left cell (the order of a square-grid encoder's tokens).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np


@dataclass(frozen=True)
class DenseTarget:
    """One per-token target. ``kind="class"``: ``size`` classes, label -1 = ignore;
    ``kind="regress"``: ``size`` values, NaN = ignore."""

    name: str
    kind: Literal["class", "regress"]
    size: int


@dataclass
class DenseData:
    """``images`` uint8 ``[N, h, w, 3]``; ``labels[name]`` int64 ``[N, G*G]`` (class targets) or
    float32 ``[N, G*G, size]`` (regression targets)."""

    images: np.ndarray
    labels: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.images)


class VisionTask(ABC):
    """Generates labelled images on demand (deterministic in ``seed``)."""

    Config: ClassVar[type]

    @abstractmethod
    def targets(self) -> list[DenseTarget]:
        """The per-token targets :meth:`generate` labels."""

    @abstractmethod
    def generate(self, num: int, *, grid: int, seed: int, held_out: bool = False) -> DenseData:
        """``num`` labelled images for a ``grid`` x ``grid`` token grid. ``held_out`` draws the
        evaluation distribution (for the tabletop world: the unseen homes and colour-shape pairs)."""
