"""Vision encoder interface: an image batch -> token embeddings, with its own preprocessing.

Build context: ``Config.build(*, out_width)`` -- the width of the backbone stream the tokens feed
(the encoder owns the projector to that width).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn


class VisionEncoder(nn.Module, ABC):
    """Turns images into ``num_tokens`` embeddings of width ``out_width`` per image."""

    Config: ClassVar[type]

    @property
    @abstractmethod
    def num_tokens(self) -> int:
        """Tokens per image ``N``."""

    @property
    @abstractmethod
    def out_width(self) -> int:
        """Width ``D`` of the output tokens (the backbone width)."""

    @abstractmethod
    def preprocess(self, images: Tensor) -> Tensor:
        """uint8 ``[B, h, w, 3]`` (any h, w) -> float ``[B, 3, H, W]`` at the encoder's input size."""

    @abstractmethod
    def forward(self, pixels: Tensor) -> Tensor:
        """float ``[B, 3, H, W]`` (from :meth:`preprocess`) -> ``[B, N, D]``."""
