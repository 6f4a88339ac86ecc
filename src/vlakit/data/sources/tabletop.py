"""Data sources generated from the tabletop world (each backed by one generated LeRobot dataset).

============================ =============================== ================= ============
source                       prompt                          target_text       actions
============================ =============================== ================= ============
``tabletop_episodes``        task instruction                current subtask   chunk of H
``tabletop_subtasks``        task instruction (high level)   current subtask   --
``tabletop_verbal``          current subtask (verbal command) --               chunk of H
============================ =============================== ================= ============

Sources with the same generation fields share one cached dataset under the recipe's
``data.cache_dir`` (its folder name holds a hash of those fields).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vlakit.components.text.points import pointed_subtask
from vlakit.data.errors import DatasetError
from vlakit.data.generate import args_digest, generate_tabletop_dataset, generation_args, is_complete
from vlakit.data.sources.lerobot import LeRobotBackedSource
from vlakit.envs.tabletop.tasks import NO_POINT
from vlakit.interfaces.data_source import DataSourceConfig
from vlakit.registry import DATA_SOURCES

FamilyName = Literal["reach", "push", "pick_place", "tidy"]
#: per-frame ``[object_x, object_y, zone_x, zone_y]`` of the subtask (-1 where it has none)
POINT_KEY = "subtask.point"


class TabletopDataConfig(DataSourceConfig):
    """Generation fields shared by the tabletop dataset sources (not registered itself)."""

    type: str = "tabletop_data"
    episodes: int = Field(300, ge=1)
    split: Literal["train", "unseen"] = "train"
    embodiment: Literal["gripper", "arm"] = "gripper"
    families: tuple[FamilyName, ...] = Field(("reach", "push", "pick_place"), min_length=1)
    seed: int = 0
    noise: float = Field(0.1, ge=0, le=1, description="std of Gaussian noise on executed expert actions")
    grip_flips: float = Field(0.0, ge=0, le=0.5,
                              description="rate per step at which the executed grip command is inverted (jaws closed "
                                          "early or opened on the way); the recorded expert labels show the recovery")
    early_closes: float = Field(0.0, ge=0, le=1,
                                description="share of episodes whose executed jaws close once, 1-4 steps before the "
                                            "expert closes them (beside the object); the labels show the recovery")
    image_size: int = Field(64, ge=16, le=512)
    #: read this existing dataset folder instead of generating one in the cache
    path: str | None = None
    subtask_points: int | None = Field(
        None, ge=2, le=100,
        description="append where each subtask happens to its text, as grid numbers on a N x N grid of the table "
                    "('move to the red cube at 3 5', 'push ... at 3 5 to 7 2'); None: plain subtask text. "
                    "Formatting only: it does not change the generated dataset")

    def generation_args(self) -> dict[str, Any]:
        return generation_args(episodes=self.episodes, split=self.split, embodiment=self.embodiment,
                               families=self.families, seed=self.seed, noise=self.noise, image_size=self.image_size,
                               grip_flips=self.grip_flips, early_closes=self.early_closes)

    def dataset_dir(self, cache_dir: Path | None) -> Path:
        if self.path is not None:
            return Path(self.path).expanduser()
        if cache_dir is None:
            raise DatasetError(f"data source type {self.type!r} needs a cache_dir (or an explicit `path`)")
        return Path(cache_dir) / f"tabletop-{self.embodiment}-{self.split}-{args_digest(self.generation_args())}"


class _TabletopSource(LeRobotBackedSource):
    @classmethod
    def test_config(cls) -> TabletopDataConfig:
        """For the conformance suite: a 2-episode dataset."""
        return cls.Config(episodes=2)  # type: ignore[attr-defined]

    def __init__(self, config: TabletopDataConfig, *, name: str, horizon: int, cache_dir: Path | None) -> None:
        super().__init__(name=name, horizon=horizon, root=config.dataset_dir(cache_dir))
        self.config = config

    def _base(self, row: int, *, with_actions: bool) -> dict[str, Any]:
        sample = super()._base(row, with_actions=with_actions)
        if self.ds.has(POINT_KEY):
            # where the subtask happens, for auxiliary losses (flow_matching.point_weight, the policy's
            # point query); NaN = none
            point = self.ds.array(POINT_KEY)[row]
            sample["subtask_point"] = np.where(point == NO_POINT, np.nan, point).astype(np.float32)
        return sample

    def _subtask(self, row: int) -> str | None:
        text = super()._subtask(row)
        bins = self.config.subtask_points
        if text is None or bins is None:
            return text
        self.ds.require(POINT_KEY, by=f"data source {self.name!r} (subtask_points: {bins})")
        return pointed_subtask(text, self.ds.array(POINT_KEY)[row], bins)

    def prepare(self, *, progress: bool = True) -> None:
        if self.config.path is not None:
            if not self.is_prepared():
                raise DatasetError(f"data source {self.name!r}: path {self.root} holds no dataset "
                                   "(missing meta/info.json)")
            return
        c = self.config
        generate_tabletop_dataset(self.root, episodes=c.episodes, split=c.split, embodiment=c.embodiment,
                                  families=c.families, seed=c.seed, noise=c.noise, image_size=c.image_size,
                                  grip_flips=c.grip_flips, early_closes=c.early_closes,
                                  progress=progress)

    def is_prepared(self) -> bool:
        if self.config.path is not None:
            return is_complete(self.root)
        return is_complete(self.root, self.config.generation_args())


class TabletopEpisodesConfig(TabletopDataConfig):
    """Robot demonstrations: task prompt, subtask target, action chunk."""

    type: Literal["tabletop_episodes"] = "tabletop_episodes"

    def build(self, *, name: str = "tabletop_episodes", horizon: int, cache_dir: Path | None = None,
              **_: Any) -> TabletopEpisodes:
        return TabletopEpisodes(self, name=name, horizon=horizon, cache_dir=cache_dir)


@DATA_SOURCES.register
class TabletopEpisodes(_TabletopSource):
    Config = TabletopEpisodesConfig


class TabletopSubtasksConfig(TabletopDataConfig):
    """High-level examples: image + task -> next subtask text (no actions)."""

    type: Literal["tabletop_subtasks"] = "tabletop_subtasks"
    families: tuple[FamilyName, ...] = Field(("reach", "push", "pick_place", "tidy"), min_length=1)

    def build(self, *, name: str = "tabletop_subtasks", horizon: int, cache_dir: Path | None = None,
              **_: Any) -> TabletopSubtasks:
        return TabletopSubtasks(self, name=name, horizon=horizon, cache_dir=cache_dir)


@DATA_SOURCES.register
class TabletopSubtasks(_TabletopSource):
    Config = TabletopSubtasksConfig
    yields_actions = False

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self._base(index, with_actions=False)
        sample["prompt"] = self.ds.task(index)
        sample["target_text"] = self._subtask(index)
        return sample


class TabletopVerbalConfig(TabletopDataConfig):
    """Verbal-instruction examples: the subtask-level command is the prompt; action chunk target."""

    type: Literal["tabletop_verbal"] = "tabletop_verbal"

    def build(self, *, name: str = "tabletop_verbal", horizon: int, cache_dir: Path | None = None,
              **_: Any) -> TabletopVerbal:
        return TabletopVerbal(self, name=name, horizon=horizon, cache_dir=cache_dir)


@DATA_SOURCES.register
class TabletopVerbal(_TabletopSource):
    Config = TabletopVerbalConfig

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self._base(index, with_actions=True)
        subtask = self._subtask(index)
        if subtask is None:
            raise DatasetError(f"data source {self.name!r}: dataset {self.root} has no 'subtask' column")
        sample["prompt"] = subtask
        sample["target_text"] = None
        return sample
