"""Learning-rate schedule (linear warmup + cosine decay) and the exponential moving average of weights."""

from __future__ import annotations

import math

import torch
from torch import nn


def warmup_cosine(step: int, *, total_steps: int, warmup_steps: int, final_lr_ratio: float) -> float:
    """LR multiplier at optimizer step ``step`` (0-based), as openpi's ``CosineDecaySchedule``.

    Warmup rises linearly from ``1/(warmup+1)`` to 1 over ``warmup_steps``; then a cosine decays
    to ``final_lr_ratio`` at ``total_steps``. Warmup is capped at the stage length.
    """
    warmup = min(warmup_steps, max(total_steps - 1, 0))
    if step < warmup:
        return (step + 1) / (warmup + 1)
    decay_steps = max(total_steps - warmup, 1)
    progress = min(max(step - warmup, 0) / decay_steps, 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return final_lr_ratio + (1.0 - final_lr_ratio) * cosine


class Ema:
    """Exponential moving average of a module's floating-point parameters.

    ``ema = decay * ema + (1 - decay) * param`` after every optimizer step; the shadow copy is kept
    in fp32 on the parameters' device (it follows them when the trainer moves the model, e.g. to a GPU,
    after the EMA was made). When EMA is on, its weights are the ones a run saves.
    """

    def __init__(self, module: nn.Module, *, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().float().clone() for name, p in module.named_parameters() if p.is_floating_point()
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for name, p in module.named_parameters():
            if name in self.shadow:  # frozen ones too: their average still converges to them
                shadow = self.shadow[name]
                if shadow.device != p.device:
                    shadow = self.shadow[name] = shadow.to(p.device)
                shadow.lerp_(p.detach().float(), 1.0 - self.decay)

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Overwrite ``module``'s parameters with the averaged ones."""
        params = dict(module.named_parameters())
        missing = sorted(set(self.shadow) - set(params))
        if missing:
            raise KeyError(f"EMA holds parameters the module lacks: {missing[:5]}")
        for name, value in self.shadow.items():
            params[name].copy_(value.to(device=params[name].device, dtype=params[name].dtype))

    def state_dict(self) -> dict[str, object]:
        return {"decay": self.decay, "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, object]) -> None:
        shadow = state["shadow"]
        assert isinstance(shadow, dict)
        unknown = sorted(set(shadow) ^ set(self.shadow))
        if unknown:
            raise KeyError(f"EMA state does not match the model; differing parameters: {unknown[:5]}")
        for k, v in shadow.items():
            self.shadow[k].copy_(v)
        self.decay = float(state["decay"])  # type: ignore[arg-type]
