"""Every recipe shipped with vlakit (and its plugins) validates and builds (on the meta device)."""

from __future__ import annotations

import pytest

from vlakit.recipe.build import build_policy
from vlakit.recipe.load import available_recipes, load_recipe

NAMES = sorted(available_recipes())


def test_the_documented_recipes_are_shipped() -> None:
    for name in ("pi05", "pi0", "pi0_fast", "pi05_tiny", "pi05_tabletop", "pi0_tabletop", "pi0_fast_tabletop"):
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_shipped_recipe_validates_and_builds(name: str) -> None:
    recipe = load_recipe(name)
    policy = build_policy(recipe, device="meta")
    assert sum(p.numel() for p in policy.parameters()) > 0
    assert set(recipe.model.heads) <= set(policy.loss_names()) | {"text"}
