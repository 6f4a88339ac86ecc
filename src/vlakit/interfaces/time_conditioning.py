"""Time conditioning interface: how the flow-matching time reaches the action expert.

Build context: ``Config.build(*, width)`` -- the action expert's width. The Config's
``adaptive_norms`` ClassVar says whether the expert's norms must be adaRMSNorms conditioned on the
vector this module returns (the builder needs it before building the backbone).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn


class TimeConditioning(nn.Module, ABC):
    """Combines embedded noisy actions with the flow time."""

    Config: ClassVar[type]

    @abstractmethod
    def forward(self, action_tokens: Tensor, time: Tensor) -> tuple[Tensor, Tensor | None]:
        """action_tokens ``[B, H, D]``, time ``[B]`` -> (tokens ``[B, H, D]``, norm condition ``[B, D]`` or None)."""
