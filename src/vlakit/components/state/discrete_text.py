"""``discrete_text`` (π0.5): the normalised state is quantised into bins and written into the prompt
``"Task: {task}, State: {b_1 b_2 ... b_d};\\nAction: "`` (reference §2.2).

openpi digitises without clipping, so a state below -1 becomes the bin ``-1`` and the text ``"-1"``.
Here out-of-range values are clipped into ``[-1, 1]`` first and every clipped value is counted
(:meth:`DiscreteTextState.stats`), so a normalisation problem shows up in the logs instead of as
strange prompt text.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from vlakit.components.state._text import clean_task
from vlakit.config import ComponentConfig
from vlakit.interfaces.state import StateEncoder
from vlakit.registry import STATE_ENCODERS


class DiscreteTextConfig(ComponentConfig):
    """State as bin indices in the prompt.

    Attributes:
        bins: number of uniform bins over [-1, 1].
    """

    type: Literal["discrete_text"] = "discrete_text"
    bins: int = Field(256, ge=2)
    emits_tokens: ClassVar[bool] = False

    def build(self, *, expert_width: int | None = None, state_dim: int | None = None) -> DiscreteTextState:
        return DiscreteTextState(bins=self.bins)


@STATE_ENCODERS.register
class DiscreteTextState(StateEncoder):
    """Writes the binned state into the prompt; emits no tokens and has no parameters."""

    Config = DiscreteTextConfig

    def __init__(self, *, bins: int = 256) -> None:
        super().__init__()
        self.bins = bins
        self.values_seen = 0
        self.values_clipped = 0

    def discretize(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """float ``[B, S]`` -> (long bins ``[B, S]`` in ``[0, bins)``, bool clipped ``[B, S]``).

        Same bins as ``np.digitize(x, linspace(-1, 1, bins + 1)[:-1]) - 1`` for x in [-1, 1].
        """
        if not torch.isfinite(state).all():
            bad = (~torch.isfinite(state)).nonzero()[0].tolist()
            raise ValueError(f"state has non-finite values (first at [sample, dim] = {bad}); cannot discretize")
        x = state.double()
        clipped = (x < -1.0) | (x > 1.0)
        edges = torch.linspace(-1.0, 1.0, self.bins + 1, dtype=torch.float64, device=x.device)[:-1]
        idx = torch.bucketize(x.clamp(-1.0, 1.0), edges, right=True) - 1
        return idx.clamp(0, self.bins - 1), clipped

    def prompt(self, *, tasks: list[str], state: Tensor, state_mask: Tensor) -> list[str]:
        if state.shape[0] != len(tasks) or state_mask.shape != state.shape:
            raise ValueError(f"{len(tasks)} tasks, state {tuple(state.shape)} and state_mask "
                             f"{tuple(state_mask.shape)} do not agree")
        idx, clipped = self.discretize(torch.where(state_mask, state, torch.zeros_like(state)))
        self.values_seen += int(state_mask.sum())
        self.values_clipped += int((clipped & state_mask).sum())
        out = []
        for task, row, mask in zip(tasks, idx.tolist(), state_mask.tolist()):
            bins = " ".join(str(b) for b, m in zip(row, mask) if m)
            out.append(f"Task: {clean_task(task)}, State: {bins};\nAction: ")
        return out

    def tokens(self, state: Tensor) -> None:
        return None

    def stats(self) -> dict[str, int]:
        return {"state_values": self.values_seen, "state_values_clipped": self.values_clipped}
