"""Data source interface: a finite, indexable set of training samples of one kind.

A source is built from its Config with ``config.build(name=..., cache_dir=..., horizon=...)``. Its
samples are plain dicts (numpy arrays and strings) *before* normalisation and padding:

============== ========================================================================
key            value
============== ========================================================================
images         camera name -> uint8 ``[h, w, 3]`` (the source's own camera names)
state          float32 ``[S_robot]`` raw, or None (no robot state, e.g. VQA)
actions        float32 ``[H, A_robot]`` raw, or None (no action target)
action_is_pad  bool ``[H]`` (True past the episode end), or None
prompt         the task / question / verbal command
target_text    next subtask or answer, or None
robot_type     stats key of ``state``/``actions`` (e.g. ``tabletop_gripper``), or None
============== ========================================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class DataSource(ABC):
    """Random-access samples of one source (see the module docstring for the sample dict)."""

    Config: ClassVar[type]
    #: the recipe's name for this source (``data.sources.<name>``); set by the builder
    name: str = ""
    #: whether samples carry an action chunk (used to pick sources for fitting action tokenizers)
    yields_actions: bool = False

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def prepare(self, *, progress: bool = True) -> None:
        """Create whatever the source reads (e.g. generate a dataset). Idempotent; default no-op."""

    def is_prepared(self) -> bool:
        """Whether :meth:`prepare` has nothing left to do."""
        return True

    def load(self) -> None:
        """Open prepared data for reading (raise a :class:`~vlakit.errors.VlakitError` naming the file
        and field if it is broken). Called once before sampling; default no-op."""

    @property
    def robot_type(self) -> str | None:
        """Stats key of the samples' state/actions; None for sources without robot data."""
        return None

    def dataset_id(self) -> str | None:
        """Identity of the underlying robot data (e.g. its folder), so sources sharing a dataset
        count its frames once in the normalisation stats."""
        return None

    def norm_arrays(self) -> dict[str, np.ndarray]:
        """Every frame's raw ``state`` ``[N, S]`` and ``actions`` ``[N, A]`` for exact stats; empty
        for sources without robot data."""
        return {}


def _data_source_config_base() -> type:
    from pydantic import Field

    from vlakit.config import ComponentConfig

    class DataSourceConfig(ComponentConfig):
        """Base Config of every data source.

        ``weight`` is its share of the training mixture. ``camera_map`` maps a model camera name
        (``model.cameras``) to the source's camera name where the two differ; unmapped model
        cameras look for a source camera of the same name and are masked out when absent.
        """

        weight: float = Field(1.0, ge=0)
        camera_map: dict[str, str] = Field(default_factory=dict)

    return DataSourceConfig


#: Base class for data source Configs (adds the mixture ``weight`` and ``camera_map``).
DataSourceConfig = _data_source_config_base()
