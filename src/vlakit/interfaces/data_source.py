"""Data source interface: a finite, indexable set of training samples of one kind."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class DataSource(ABC):
    """Random-access samples (dicts of numpy arrays and strings) before collation.

    A sample dict has the keys the collator understands (see ``vlakit.data``): ``images``,
    ``image_masks``, ``state``, ``prompt``, and optionally ``actions``/``action_is_pad``/``target_text``.
    """

    Config: ClassVar[type]

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]: ...


def _data_source_config_base() -> type:
    from vlakit.config import ComponentConfig

    class DataSourceConfig(ComponentConfig):
        """Base Config of every data source: ``weight`` is its share of the training mixture."""

        weight: float = 1.0

    return DataSourceConfig


#: Base class for data source Configs (adds the mixture ``weight``).
DataSourceConfig = _data_source_config_base()
