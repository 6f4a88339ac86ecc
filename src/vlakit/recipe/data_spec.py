"""The ``data:`` section: the weighted mixture of sources and how batches are made."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from vlakit.config import FrozenModel
from vlakit.recipe.fields import Component


class DataSpec(FrozenModel):
    """Co-training mixture. Each source's ``weight`` is its sampling share (weights need not sum
    to 1; a weight of 0 keeps a source out of the mixture but in the norm stats)."""

    sources: dict[str, Component("data_sources")] = Field(min_length=1)  # type: ignore[valid-type]
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0, description="loader threads per source (0 = load in the main thread)")
    prefetch: int = Field(0, ge=0, description="batches made ahead in a background process while the model "
                                               "trains (0 = each batch is made in the training process)")
    normalization: Literal["quantile", "mean_std"] = "quantile"
    #: square size every camera image is resized (with padding) to; None = keep the sources' size
    #: (then every source must deliver the same size)
    image_size: int | None = Field(None, ge=8)
    #: where generated/cached datasets live (relative paths are relative to the working directory)
    cache_dir: str = ".cache/vlakit/data"
    seed: int = 0

    @field_validator("sources")
    @classmethod
    def _positive_weights(cls, v: dict) -> dict:
        total = sum(float(getattr(s, "weight", 1.0)) for s in v.values())
        if total <= 0:
            raise ValueError("source weights must sum to a positive number")
        return v
