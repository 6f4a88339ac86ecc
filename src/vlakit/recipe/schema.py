"""The recipe schema: frozen pydantic models with ``extra="forbid"`` all the way down.

Component specs (``type: ...``) validate against the Config of the component their type names,
including plugin components (see :mod:`vlakit.recipe.fields`).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from vlakit.config import FrozenModel
from vlakit.recipe.data_spec import DataSpec
from vlakit.recipe.eval_spec import EvalSpec
from vlakit.recipe.fields import Component
from vlakit.recipe.model_spec import InferenceSpec, ModelSpec
from vlakit.recipe.train_spec import OptimizerSpec, ScheduleSpec, StageSpec, TrainSpec

__all__ = ["Recipe", "ModelSpec", "InferenceSpec", "DataSpec", "TrainSpec", "StageSpec", "OptimizerSpec",
           "ScheduleSpec", "EvalSpec"]


class Recipe(FrozenModel):
    """A complete, validated recipe: what to build, what to train on, how to train and evaluate."""

    name: str
    description: str = ""
    model: ModelSpec
    data: DataSpec | None = None
    train: TrainSpec | None = None
    eval: EvalSpec = Field(default_factory=EvalSpec)
    backend: Component("backends", default_type="auto") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"type": "auto"}, validate_default=True)

    @model_validator(mode="after")
    def _dropout_cameras_exist(self) -> Recipe:
        if self.train is not None and self.train.camera_dropout:
            unknown = sorted(set(self.train.camera_dropout) - set(self.model.cameras))
            if unknown:
                raise ValueError(f"train.camera_dropout names camera(s) {unknown} that are not in model.cameras "
                                 f"{list(self.model.cameras)}")
            if all(c in self.train.camera_dropout for c in self.model.cameras):
                raise ValueError("train.camera_dropout covers every camera in model.cameras; leave at least one "
                                 "camera that is always shown")
        return self

    @model_validator(mode="after")
    def _point_query_grid_matches_data(self) -> Recipe:
        query = self.model.point_query
        if query is None or self.data is None:
            return self
        grids = {n: s.subtask_points for n, s in self.data.sources.items()
                 if getattr(s, "subtask_points", None) is not None}
        wrong = {n: g for n, g in grids.items() if g != query.bins}
        if wrong:
            raise ValueError(f"model.point_query.bins is {query.bins} but data source(s) write subtask points on "
                             f"other grids: {wrong} (subtask_points); the query fills the subtask text's numbers, "
                             "so the grids must agree")
        return self

    @model_validator(mode="after")
    def _stage_mixtures_name_sources(self) -> Recipe:
        if self.train is None:
            return self
        for i, stage in enumerate(self.train.stages):
            if stage.mixture is None:
                continue
            if self.data is None:
                raise ValueError(f"train.stages[{i}] ({stage.name}) has a mixture but the recipe has no data section")
            unknown = sorted(set(stage.mixture) - set(self.data.sources))
            if unknown:
                raise ValueError(f"train.stages[{i}].mixture ({stage.name}) names source(s) {unknown} that are not "
                                 f"in data.sources {sorted(self.data.sources)}")
            weights = {n: float(s.weight) for n, s in self.data.sources.items()} | stage.mixture
            if not sum(weights.values()) > 0:
                raise ValueError(f"train.stages[{i}].mixture ({stage.name}) leaves every source at weight 0")
        return self
