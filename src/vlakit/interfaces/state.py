"""State encoder interface: the robot state enters as prompt text or as expert tokens.

Build context: ``Config.build(*, expert_width, state_dim)`` -- the width of the action expert (None
when the recipe has no expert stream) and the padded state width ``S``. Configs declare
``emits_tokens: ClassVar[bool]``; an encoder that emits tokens needs an action expert (checked by
the builder).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn


class StateEncoder(nn.Module, ABC):
    """Formats the prompt (possibly with the state in it) and/or embeds the state as tokens."""

    Config: ClassVar[type]

    @abstractmethod
    def prompt(self, *, tasks: list[str], state: Tensor, state_mask: Tensor) -> list[str]:
        """B task strings, normalised state ``[B, S]``, bool mask ``[B, S]`` -> B prompt strings."""

    @abstractmethod
    def tokens(self, state: Tensor) -> Tensor | None:
        """Normalised state ``[B, S]`` -> ``[B, N, D_expert]`` tokens for the action expert, or None."""

    def stats(self) -> dict[str, int]:
        """Counters worth logging (e.g. how many state values were clipped). Default: none."""
        return {}
