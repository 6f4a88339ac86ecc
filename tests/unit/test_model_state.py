"""State encoders: discrete prompt text with clipping counted, continuous expert token."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlakit.registry import STATE_ENCODERS


def test_discrete_bins_match_openpi_digitize_in_range():
    enc = STATE_ENCODERS.config_class("discrete_text")().build()
    x = np.random.RandomState(0).uniform(-1, 1, (4, 500))
    x[0, :3] = [-1.0, 0.0, 0.999999]
    idx, clipped = enc.discretize(torch.from_numpy(x))
    np.testing.assert_array_equal(idx.numpy(), np.digitize(x, np.linspace(-1, 1, 257)[:-1]) - 1)
    assert not clipped.any()


def test_out_of_range_state_is_clipped_and_counted_never_bin_minus_one():
    enc = STATE_ENCODERS.config_class("discrete_text")(bins=256).build()
    state = torch.tensor([[-1.7, 0.0, 1.5, 9.0], [0.5, -0.5, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    prompts = enc.prompt(tasks=["pick_up the\nblock ", "stack"], state=state, state_mask=mask)
    assert prompts == ["Task: pick up the block, State: 0 128 255;\nAction: ",
                       "Task: stack, State: 192 64;\nAction: "]
    assert enc.stats() == {"state_values": 5, "state_values_clipped": 2}  # the masked 9.0 is not counted
    with pytest.raises(ValueError, match="non-finite"):
        enc.prompt(tasks=["x"], state=torch.tensor([[float("nan")]]), state_mask=torch.tensor([[True]]))


def test_continuous_token_projects_state_to_one_expert_token():
    enc = STATE_ENCODERS.config_class("continuous_token")().build(expert_width=16, state_dim=6)
    tokens = enc.tokens(torch.randn(3, 6))
    assert tokens.shape == (3, 1, 16)
    assert enc.prompt(tasks=["open_drawer"], state=torch.zeros(1, 6), state_mask=torch.ones(1, 6, dtype=torch.bool)) \
        == ["open drawer\n"]
    with pytest.raises(ValueError, match="action expert"):
        STATE_ENCODERS.config_class("continuous_token")().build(expert_width=None, state_dim=6)
