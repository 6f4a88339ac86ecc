"""The ``lerobot`` data source: any LeRobot v3 dataset folder on disk (robot episodes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from vlakit.data.errors import DatasetError
from vlakit.data.lerobot_reader import LeRobotDataset
from vlakit.interfaces.data_source import DataSource, DataSourceConfig
from vlakit.registry import DATA_SOURCES


class LeRobotBackedSource(DataSource):
    """Shared reading logic for sources backed by one LeRobot dataset folder.

    Subclasses set ``root`` and choose what the prompt/target are via :meth:`_compose`.
    """

    state_key = "observation.state"
    action_key = "action"
    yields_actions = True
    subtask_key: str | None = "subtask"

    def __init__(self, *, name: str, horizon: int, root: Path, robot_type_override: str | None = None) -> None:
        self.name = name
        self.horizon = int(horizon)
        self.root = Path(root)
        self._robot_type_override = robot_type_override
        self._ds: LeRobotDataset | None = None

    @property
    def ds(self) -> LeRobotDataset:
        if self._ds is None:
            self.load()
        assert self._ds is not None
        return self._ds

    def load(self) -> None:
        if self._ds is not None:
            return
        if not (self.root / "meta/info.json").is_file():
            raise DatasetError(f"data source {self.name!r}: no dataset at {self.root} (missing meta/info.json); "
                               "run `vlakit data generate` or prepare_sources() first")
        ds = LeRobotDataset(self.root)
        by = f"data source {self.name!r}"
        ds.require(self.state_key, by=by)
        ds.require(self.action_key, by=by)
        if not ds.camera_keys:
            raise DatasetError(f"dataset {self.root} has no image or video feature, which {by} needs")
        self._ds = ds

    @property
    def robot_type(self) -> str:
        return self._robot_type_override or self.ds.robot_type or self.root.name

    def dataset_id(self) -> str:
        return str(self.root.resolve())

    def norm_arrays(self) -> dict[str, np.ndarray]:
        return {"state": self.ds.array(self.state_key), "actions": self.ds.array(self.action_key)}

    def __len__(self) -> int:
        return len(self.ds)

    def _subtask(self, row: int) -> str | None:
        if self.subtask_key and self.ds.has(self.subtask_key):
            return self.ds.strings(self.subtask_key)[row]
        return None

    def _base(self, row: int, *, with_actions: bool) -> dict[str, Any]:
        ds = self.ds
        if not 0 <= row < len(ds):
            raise IndexError(f"data source {self.name!r}: index {row} out of range [0, {len(ds)})")
        sample: dict[str, Any] = {
            "images": {ds.camera_name(k): ds.image(k, row) for k in ds.camera_keys},
            "state": ds.array(self.state_key)[row],
            "actions": None, "action_is_pad": None, "robot_type": self.robot_type,
        }
        if with_actions:
            sample["actions"], sample["action_is_pad"] = ds.chunk(self.action_key, row, self.horizon)
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self._base(index, with_actions=True)
        sample["prompt"] = self.ds.task(index)
        sample["target_text"] = self._subtask(index)
        return sample


class LeRobotSourceConfig(DataSourceConfig):
    """Robot episodes from a LeRobot v3 dataset folder: prompt = task, actions = chunk of H,
    target text = the per-frame ``subtask`` column when the dataset has one."""

    type: Literal["lerobot"] = "lerobot"
    path: str
    #: stats key; default: the dataset's ``robot_type`` (or its folder name when that is null)
    robot_type: str | None = None
    subtask_key: str | None = "subtask"

    def build(self, *, name: str = "lerobot", horizon: int, cache_dir: Path | None = None,
              **_: Any) -> LeRobotSource:
        return LeRobotSource(self, name=name, horizon=horizon)


@DATA_SOURCES.register
class LeRobotSource(LeRobotBackedSource):
    Config = LeRobotSourceConfig

    @classmethod
    def test_config(cls) -> LeRobotSourceConfig:
        """For the conformance suite: a 2-episode tabletop dataset written to a temp folder."""
        import tempfile

        from vlakit.data.sources.tabletop import TabletopEpisodesConfig

        # the tabletop source's own cache: one folder per generation arguments (generator version
        # included), so a finished dataset is reused and a newer generator never trips over an older one
        tabletop = TabletopEpisodesConfig(episodes=2, families=("reach",)).build(
            horizon=1, cache_dir=Path(tempfile.gettempdir()) / "vlakit-conformance")
        tabletop.prepare(progress=False)
        return LeRobotSourceConfig(path=str(tabletop.root))

    def __init__(self, config: LeRobotSourceConfig, *, name: str, horizon: int) -> None:
        super().__init__(name=name, horizon=horizon, root=Path(config.path).expanduser(),
                         robot_type_override=config.robot_type)
        self.subtask_key = config.subtask_key
        self.config = config

    def is_prepared(self) -> bool:
        return (self.root / "meta/info.json").is_file()
