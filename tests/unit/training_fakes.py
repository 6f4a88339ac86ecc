"""Small stand-ins for the policy and the data loader, for fast training tests (not a test module)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from vlakit.types import ActionChunk, Batch, Observation

H, A, S = 4, 3, 3


class FakePolicy(nn.Module):
    """A VLAPolicy look-alike: ``compute_loss`` with flow/text losses that draw torch RNG noise."""

    def __init__(self, *, nan_at_call: int | None = None) -> None:
        super().__init__()
        self.vision = nn.Linear(S, 8)
        self.head = nn.Linear(8, H * A)
        self.text_head = nn.Linear(8, 1)
        self.text_tokenizer = None
        self.action_tokenizer = None
        self.spec = None
        self.calls = 0
        self.nan_at_call = nan_at_call

    def trainable_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"vision": list(self.vision.parameters()),
                "heads": list(self.head.parameters()) + list(self.text_head.parameters())}

    def compute_loss(self, batch: Batch, *, losses: Any = None) -> dict[str, torch.Tensor]:
        self.calls += 1
        h = torch.tanh(self.vision(batch.observation.state))
        noise = torch.randn_like(batch.actions) * 0.01  # like flow-matching noise: uses the global RNG
        pred = self.head(h).view(-1, H, A)
        out = {"flow_matching": ((pred - batch.actions - noise) ** 2).mean(),
               "text": (self.text_head(h) ** 2).mean()}
        if self.nan_at_call is not None and self.calls >= self.nan_at_call:
            out["flow_matching"] = out["flow_matching"] * float("nan")
        return out

    def sample_actions(self, observation: Observation, *, noise: Any = None, num_steps: Any = None) -> ActionChunk:
        h = torch.tanh(self.vision(observation.state))
        actions = self.head(h).view(-1, H, A)
        b = actions.shape[0]
        return ActionChunk(actions=actions, valid=torch.ones(b, dtype=torch.bool), errors=[None] * b)


class FakeLoader:
    """Infinite deterministic batches from a seeded numpy generator; resumable by counter."""

    def __init__(self, *, seed: int = 0, batch_size: int = 4, rank: int = 0, world_size: int = 1) -> None:
        self.seed, self.batch_size, self.rank, self.world_size = seed, batch_size, rank, world_size
        self.index = 0

    def state_dict(self) -> dict[str, Any]:
        return {"index": self.index}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.index = int(state["index"])

    def __iter__(self):
        while True:
            rng = np.random.default_rng([self.seed, self.rank, self.index])
            self.index += 1
            yield make_batch(rng, self.batch_size)


def make_batch(rng: np.random.Generator, b: int) -> Batch:
    state = torch.from_numpy(rng.uniform(-1, 1, (b, S)).astype(np.float32))
    actions = torch.stack([state * (k + 1) / H for k in range(H)], dim=1)
    obs = Observation(images={"base_0_rgb": torch.zeros(b, 8, 8, 3, dtype=torch.uint8)},
                      image_masks={"base_0_rgb": torch.ones(b, dtype=torch.bool)}, state=state,
                      state_mask=torch.ones(b, S, dtype=torch.bool), prompt=["push the cube"] * b)
    return Batch(observation=obs, actions=actions, action_is_pad=torch.zeros(b, H, dtype=torch.bool),
                 action_dim_mask=torch.ones(b, A, dtype=torch.bool), has_actions=torch.ones(b, dtype=torch.bool),
                 target_text=[None] * b, source=["robot"] * (b - 1) + ["vqa"])
