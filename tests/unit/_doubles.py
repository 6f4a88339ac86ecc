"""Helpers for model/policy tests (not a test module): tiny policies, observations and batches.

The shipped tokenizers (``tabletop_bpe``, ``fast``) are used as they are; a FAST tokenizer is fitted
once per process on seeded random chunks.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from vlakit.recipe.build import build_policy
from vlakit.recipe.load import load_recipe
from vlakit.types import Batch, Observation


@functools.lru_cache(maxsize=8)
def _fitted_fast(horizon: int, action_dim: int, vocab_size: int):
    from vlakit.registry import ACTION_TOKENIZERS

    tok = ACTION_TOKENIZERS.config_class("fast")(vocab_size=vocab_size, out_of_range="clip").build()
    chunks = np.random.RandomState(0).uniform(-1.0, 1.0, (64, horizon, action_dim)).cumsum(axis=1) / 4
    tok.fit(np.clip(chunks, -1, 1))
    return tok


def tiny_recipe(name: str = "pi05_tiny", *overrides: str):
    return load_recipe(name, list(overrides))


def tiny_policy(name: str = "pi05_tiny", *overrides: str, seed: int = 0):
    """A freshly initialised tiny policy (FAST tokenizer fitted when the recipe has one)."""
    recipe = tiny_recipe(name, *overrides)
    spec = recipe.model
    action_tokenizer = None
    if spec.action_tokenizer is not None and spec.action_tokenizer.type == "fast":
        action_tokenizer = _fitted_fast(spec.horizon, spec.max_action_dim, spec.action_tokenizer.vocab_size)
    torch.manual_seed(seed)
    return build_policy(recipe, action_tokenizer=action_tokenizer)


def observation(spec, batch_size: int = 2, *, seed: int = 0, state_dims: int = 3) -> Observation:
    """Random uint8 images for every camera, ``state_dims`` real state dims, short prompts."""
    g = torch.Generator().manual_seed(seed)
    b, s = batch_size, spec.max_action_dim
    images = {c: torch.randint(0, 256, (b, 64, 64, 3), generator=g, dtype=torch.uint8) for c in spec.cameras}
    state_mask = torch.zeros(b, s, dtype=torch.bool)
    state_mask[:, :state_dims] = True
    state = (torch.rand(b, s, generator=g) * 2 - 1) * state_mask
    prompts = ["pick up the red block", "put the blue block in the bowl", "push the green block left",
               "stack the yellow block"]
    return Observation(images=images, image_masks={c: torch.ones(b, dtype=torch.bool) for c in spec.cameras},
                       state=state, state_mask=state_mask, prompt=[prompts[i % len(prompts)] for i in range(b)])


def batch(spec, batch_size: int = 2, *, seed: int = 0, targets: list[str | None] | None = None) -> Batch:
    """A training batch with smooth random action chunks in [-1, 1] and subtask targets."""
    g = torch.Generator().manual_seed(seed + 1)
    b, h, a = batch_size, spec.horizon, spec.max_action_dim
    actions = ((torch.rand(b, h, a, generator=g) * 2 - 1).cumsum(dim=1) / 4).clamp(-1, 1)
    if targets is None:
        subtasks = ["move to the red block", "grasp the block", "lift", "open the gripper"]
        targets = [subtasks[i % len(subtasks)] for i in range(b)]
    return Batch(observation=observation(spec, b, seed=seed), actions=actions,
                 action_is_pad=torch.zeros(b, h, dtype=torch.bool), action_dim_mask=torch.ones(b, a, dtype=torch.bool),
                 has_actions=torch.ones(b, dtype=torch.bool), target_text=list(targets), source=["test"] * b)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models are fastest single-threaded; on a busy 2-core machine two threads spin-wait badly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
