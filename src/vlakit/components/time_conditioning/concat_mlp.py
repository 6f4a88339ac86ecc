"""``concat_mlp`` (π0): each action token is fused with the time embedding by an MLP.

``tokens = mlp_out(swish(mlp_in(concat(action_tokens, posemb_sincos(t)))))``, no swish after the
last layer (reference §1.7); the expert keeps plain RMSNorms.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from vlakit.config import ComponentConfig
from vlakit.interfaces.time_conditioning import TimeConditioning
from vlakit.nn.time_embedding import posemb_sincos
from vlakit.registry import TIME_CONDITIONINGS


class ConcatMLPConfig(ComponentConfig):
    """Action-time MLP fusion (π0)."""

    type: Literal["concat_mlp"] = "concat_mlp"
    min_period: float = Field(4e-3, gt=0)
    max_period: float = Field(4.0, gt=0)
    adaptive_norms: ClassVar[bool] = False

    def build(self, *, width: int) -> ConcatMLPConditioning:
        return ConcatMLPConditioning(mlp_in=nn.Linear(2 * width, width), mlp_out=nn.Linear(width, width),
                                     min_period=self.min_period, max_period=self.max_period)


@TIME_CONDITIONINGS.register
class ConcatMLPConditioning(TimeConditioning):
    """Per-token action-time fusion; returns no norm condition."""

    Config = ConcatMLPConfig

    def __init__(self, *, mlp_in: nn.Linear, mlp_out: nn.Linear, min_period: float = 4e-3,
                 max_period: float = 4.0) -> None:
        super().__init__()
        self.mlp_in = mlp_in
        self.mlp_out = mlp_out
        self.min_period, self.max_period = min_period, max_period

    def forward(self, action_tokens: Tensor, time: Tensor) -> tuple[Tensor, None]:
        b, h, d = action_tokens.shape
        emb = posemb_sincos(time, d, min_period=self.min_period, max_period=self.max_period).to(action_tokens.dtype)
        fused = torch.cat([action_tokens, emb[:, None, :].expand(b, h, d)], dim=-1)
        return self.mlp_out(F.silu(self.mlp_in(fused))), None
