"""``continuous_token`` (π0): the state is linearly projected to one token of the action expert.

The token forms its own attention block before the action chunk: it sees the prefix and itself,
and the actions see it (reference §2.2). The prompt is the cleaned task followed by a newline.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor, nn

from vlakit.components.state._text import clean_task
from vlakit.config import ComponentConfig
from vlakit.interfaces.state import StateEncoder
from vlakit.registry import STATE_ENCODERS


class ContinuousTokenConfig(ComponentConfig):
    """State as one continuous action-expert token."""

    type: Literal["continuous_token"] = "continuous_token"
    emits_tokens: ClassVar[bool] = True

    def build(self, *, expert_width: int | None = None, state_dim: int | None = None) -> ContinuousTokenState:
        if expert_width is None or state_dim is None:
            raise ValueError("continuous_token state needs an action expert (a flow_matching head) and the "
                             "state width")
        return ContinuousTokenState(state_proj=nn.Linear(state_dim, expert_width))


@STATE_ENCODERS.register
class ContinuousTokenState(StateEncoder):
    """``state_proj(state)`` as a ``[B, 1, D_expert]`` token."""

    Config = ContinuousTokenConfig

    def __init__(self, *, state_proj: nn.Linear) -> None:
        super().__init__()
        self.state_proj = state_proj

    def prompt(self, *, tasks: list[str], state: Tensor, state_mask: Tensor) -> list[str]:
        return [clean_task(t) + "\n" for t in tasks]

    def tokens(self, state: Tensor) -> Tensor:
        if state.shape[-1] != self.state_proj.in_features:
            raise ValueError(f"state has {state.shape[-1]} dims, the state projection expects "
                             f"{self.state_proj.in_features} (max_action_dim)")
        return self.state_proj(state.to(self.state_proj.weight.dtype))[:, None, :]
