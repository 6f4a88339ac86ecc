"""The data pipeline: LeRobot v3 reading/writing, tabletop data sources, normalisation, the mixture.

Entry points: :func:`prepare_sources`, :func:`compute_norm_stats`, :func:`build_train_loader`,
:func:`iter_action_chunks`, :class:`NormStats`, :class:`ObservationTransform`.

``normalize``/``unnormalize`` live in :mod:`vlakit.data.normalize` (the module name would shadow
them here). Names are imported lazily, so importing ``vlakit.data.sources`` (which recipe validation does)
does not pull in torch/torchdata.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DatasetError": "vlakit.data.errors", "NormStatsError": "vlakit.data.errors",
    "LeRobotDataset": "vlakit.data.lerobot_reader",
    "FeatureStats": "vlakit.data.normalize", "NormStats": "vlakit.data.normalize",
    "build_sources": "vlakit.data.pipeline", "build_train_loader": "vlakit.data.pipeline",
    "compute_norm_stats": "vlakit.data.pipeline", "iter_action_chunks": "vlakit.data.pipeline",
    "prepare_sources": "vlakit.data.pipeline",
    "ObservationTransform": "vlakit.data.transforms", "SampleTransform": "vlakit.data.transforms",
    "collate": "vlakit.data.transforms", "resize_with_pad": "vlakit.data.transforms",
    "generate_tabletop_dataset": "vlakit.data.generate", "TrainLoader": "vlakit.data.mixture",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vlakit.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
