"""The ``eval:`` section: closed-loop evaluation settings."""

from __future__ import annotations

from pydantic import Field

from vlakit.config import FrozenModel
from vlakit.recipe.fields import Component


class EvalSpec(FrozenModel):
    env: Component("envs", default_type="tabletop") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"type": "tabletop"}, validate_default=True)
    splits: list[str] = Field(default_factory=lambda: ["train", "unseen"])
    episodes: int = Field(50, ge=1, description="episodes per split")
    replan_every: int = Field(5, ge=1, description="execute this many actions of each chunk open-loop")
    seed: int = 1000
