"""RMSNorm with Gemma's ``(1 + scale)`` convention and its time-conditioned variant, adaRMSNorm.

Both compute their statistics in float32 and cast the result back to the input dtype
(reference §1.5). Both return ``(y, gate)`` so a block can apply a *gated residual*
``x + y * gate`` uniformly; the plain norm's gate is ``None`` (residual ``x + y``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _rms_normalize(x: Tensor, eps: float) -> Tensor:
    """``x * rsqrt(mean(x^2) + eps)`` over the last dim, in float32."""
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)


class RMSNorm(nn.Module):
    """``normed(x) * (1 + scale)``; ``scale`` starts at zero (Gemma).

    Args:
        width: feature width ``D``.
        eps: added to the mean square (1e-6 in Gemma).
    """

    def __init__(self, width: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.scale = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, None]:
        """x ``[B, N, D]`` -> (``[B, N, D]`` in x's dtype, None). ``cond`` must be None."""
        if cond is not None:
            raise ValueError("RMSNorm takes no conditioning; this expert was built without adaRMS norms")
        y = _rms_normalize(x, self.eps) * (1.0 + self.scale.float())
        return y.to(x.dtype), None


class AdaRMSNorm(nn.Module):
    """Time-conditioned RMSNorm (π0.5 action expert).

    A linear layer maps the condition ``[B, C]`` to ``[scale, shift, gate]`` (each ``[B, D]``, split
    in that order); the output is ``normed(x) * (1 + scale) + shift`` and the gate is returned for
    the gated residual. The linear's weight starts at zero, so scale and shift start as constants
    given by the bias; the bias keeps PyTorch's default init as in openpi's PyTorch port, which keeps
    the gated branches open (and their weights trainable) when training from scratch.

    Args:
        width: feature width ``D``.
        cond_width: width ``C`` of the condition vector.
        eps: added to the mean square.
    """

    def __init__(self, width: int, *, cond_width: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.modulation = nn.Linear(cond_width, 3 * width)
        nn.init.zeros_(self.modulation.weight)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x ``[B, N, D]``, cond ``[B, C]`` -> (``[B, N, D]``, gate ``[B, 1, D]``), both in x's dtype."""
        if cond is None:
            raise ValueError("AdaRMSNorm needs a conditioning vector (the flow time embedding); got None")
        mod = self.modulation(cond.to(self.modulation.weight.dtype)).float()[:, None, :]
        scale, shift, gate = mod.chunk(3, dim=-1)
        y = _rms_normalize(x, self.eps) * (1.0 + scale) + shift
        return y.to(x.dtype), gate.to(x.dtype)


def gated_residual(x: Tensor, y: Tensor, gate: Tensor | None) -> Tensor:
    """``x + y * gate`` when a gate exists, else ``x + y``."""
    return x + y if gate is None else x + y * gate
