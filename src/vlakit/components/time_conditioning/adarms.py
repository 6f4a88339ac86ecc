"""``adarms`` (π0.5): the flow time becomes the condition of every adaRMSNorm of the action expert.

``cond = swish(time_mlp_out(swish(time_mlp_in(posemb_sincos(t)))))`` (reference §1.7); the action
tokens pass through unchanged. The norms themselves (scale/shift/gate from a zero-initialised
linear, gated residuals, final norm included) live in the expert, which the builder creates with
adaptive norms because ``adaptive_norms`` is True.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from vlakit.config import ComponentConfig
from vlakit.interfaces.time_conditioning import TimeConditioning
from vlakit.nn.time_embedding import posemb_sincos
from vlakit.registry import TIME_CONDITIONINGS


class AdaRMSConfig(ComponentConfig):
    """adaRMSNorm time conditioning (π0.5)."""

    type: Literal["adarms"] = "adarms"
    min_period: float = Field(4e-3, gt=0)
    max_period: float = Field(4.0, gt=0)
    adaptive_norms: ClassVar[bool] = True

    def build(self, *, width: int) -> AdaRMSConditioning:
        return AdaRMSConditioning(time_mlp_in=nn.Linear(width, width), time_mlp_out=nn.Linear(width, width),
                                  min_period=self.min_period, max_period=self.max_period)


@TIME_CONDITIONINGS.register
class AdaRMSConditioning(TimeConditioning):
    """Time MLP producing the adaRMS condition ``[B, D]``."""

    Config = AdaRMSConfig

    def __init__(self, *, time_mlp_in: nn.Linear, time_mlp_out: nn.Linear, min_period: float = 4e-3,
                 max_period: float = 4.0) -> None:
        super().__init__()
        self.time_mlp_in = time_mlp_in
        self.time_mlp_out = time_mlp_out
        self.min_period, self.max_period = min_period, max_period

    def forward(self, action_tokens: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
        emb = posemb_sincos(time, self.time_mlp_in.in_features, min_period=self.min_period,
                            max_period=self.max_period).to(action_tokens.dtype)
        cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(emb))))
        return action_tokens, cond
