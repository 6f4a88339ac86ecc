"""The ``eval:`` section: closed-loop evaluation settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vlakit.config import FrozenModel
from vlakit.recipe.fields import Component


class EvalSpec(FrozenModel):
    env: Component("envs", default_type="tabletop") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"type": "tabletop"}, validate_default=True)
    splits: list[str] = Field(default_factory=lambda: ["train", "unseen"])
    episodes: int = Field(50, ge=1, description="episodes per split")
    replan_every: int = Field(5, ge=1, description="execute this many actions of each chunk open-loop")
    seed: int = Field(0, description="episode i of every split is reset with seed + i")
    #: model camera -> env camera, where the env names its cameras differently from the recipe
    camera_map: dict[str, str] = Field(default_factory=dict)
    #: episodes per split drawn into the PNG/GIF strip
    strip_episodes: int = Field(3, ge=0)
    batch_size: int = Field(1, ge=1, description="episodes rolled out together, one batched policy call per "
                                                 "replan (latency is then that of the batched call)")
    #: ``oracle``: the policy is given the env's subtask label instead of predicting one (the low-level
    #: policy under a perfect high-level one); needs a policy that predicts subtasks
    subtasks: Literal["predicted", "oracle"] = "predicted"
