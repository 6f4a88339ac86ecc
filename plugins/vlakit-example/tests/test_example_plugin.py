"""The example plugin's own tests: discovery through entry points and vlakit's conformance suite."""

from __future__ import annotations

import numpy as np
import pytest

from vlakit.registry import ACTION_TOKENIZERS, ENVS
from vlakit.testing import check_component


def test_components_are_discovered_through_entry_points() -> None:
    assert "example_mulaw" in ACTION_TOKENIZERS.keys()
    assert "example_point_mass" in ENVS.keys()
    assert ACTION_TOKENIZERS.origin("example_mulaw").replace("_", "-") == "vlakit-example"


@pytest.mark.parametrize("kind,key", [("action_tokenizers", "example_mulaw"), ("envs", "example_point_mass")])
def test_conformance(kind: str, key: str) -> None:
    check_component(kind, key)


def test_mulaw_is_finer_near_zero() -> None:
    tok = ACTION_TOKENIZERS.get("example_mulaw")()
    small = np.full((1, 1, 1), 0.01)
    large = np.full((1, 1, 1), 0.9)
    err_small = abs(tok.decode(tok.encode(small), horizon=1, action_dim=1).actions[0, 0, 0] - 0.01)
    err_large = abs(tok.decode(tok.encode(large), horizon=1, action_dim=1).actions[0, 0, 0] - 0.9)
    assert err_small < err_large


def test_point_mass_expert_succeeds() -> None:
    env = ENVS.get("example_point_mass")()
    successes = 0
    for seed in range(10):
        env.reset(seed=seed)
        for _ in range(env.max_episode_steps):
            _, _, done, truncated, info = env.step(env.expert_action())
            if done or truncated:
                break
        successes += info["success"]
    assert successes == 10


def test_plugin_recipe_folder_is_listed_and_validates() -> None:
    from vlakit.recipe.load import available_recipes, load_recipe

    origin, path = available_recipes()["pi0_fast_mulaw_tiny"]
    assert origin.replace("_", "-") == "vlakit-example"
    recipe = load_recipe("pi0_fast_mulaw_tiny")
    assert recipe.model.action_tokenizer.type == "example_mulaw"
