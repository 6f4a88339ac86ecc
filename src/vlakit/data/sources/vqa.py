"""The ``tabletop_vqa`` data source: questions and answers about rendered tabletop scenes.

Samples are rendered on the fly from their index (deterministic, nothing cached): rendering a
scene costs well under a millisecond. They carry images, a question as prompt and the answer as
target text; no state, no actions (the stand-in for web data in the co-training mixture).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from vlakit.interfaces.data_source import DataSource, DataSourceConfig
from vlakit.registry import DATA_SOURCES


class TabletopVQAConfig(DataSourceConfig):
    type: Literal["tabletop_vqa"] = "tabletop_vqa"
    num_samples: int = Field(20000, ge=1, description="size of the (virtual) dataset")
    split: Literal["train", "unseen"] = "train"
    #: ``all``: objects from every colour x shape pair, like web data (the homes stay the split's);
    #: ``split``: only the split's pairs
    pairs: Literal["split", "all"] = "split"
    seed: int = 0
    image_size: int = Field(64, ge=16, le=512)
    points: int | None = Field(None, ge=2, le=100, description="also ask pointing questions ('where is the red cube "
                               "at?' -> '3 5' on a N x N grid of the table); None: no pointing questions")
    #: the question types asked (default: every type, ``point`` included when ``points`` is set), e.g.
    #: ``[point, point_zone]`` for a source of pointing questions only (objects and zones). Pointing
    #: samples also carry where the answer is (``subtask_point``), which the policy's point query learns
    questions: tuple[str, ...] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _known_questions(self) -> TabletopVQAConfig:
        from vlakit.envs.tabletop.vqa import POINT_TYPES, QUESTION_TYPES

        if self.questions is not None:
            known = (*QUESTION_TYPES, *POINT_TYPES)
            unknown = [q for q in self.questions if q not in known]
            if unknown:
                raise ValueError(f"unknown VQA question type(s) {unknown}; valid: {', '.join(known)}")
            pointing = [q for q in self.questions if q in POINT_TYPES]
            if pointing and self.points is None:
                raise ValueError(f"questions include {pointing} but points (the grid size) is not set")
        return self

    def build(self, *, name: str = "tabletop_vqa", cache_dir: Path | None = None, **_: Any) -> TabletopVQA:
        return TabletopVQA(self, name=name)


@DATA_SOURCES.register
class TabletopVQA(DataSource):
    Config = TabletopVQAConfig

    def __init__(self, config: TabletopVQAConfig, *, name: str) -> None:
        self.config = config
        self.name = name
        self._local = threading.local()  # one renderer per thread (it holds per-scene buffers)

    def __len__(self) -> int:
        return self.config.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        from vlakit.envs.tabletop.vqa import make_vqa

        if not 0 <= index < len(self):
            raise IndexError(f"data source {self.name!r}: index {index} out of range [0, {len(self)})")
        renderer = getattr(self._local, "renderer", None)
        if renderer is None:
            from vlakit.envs.tabletop.render import Renderer

            renderer = self._local.renderer = Renderer(size=self.config.image_size, wrist_canvas=False)
        s = make_vqa(self.config.seed * 10_000_000 + index, split=self.config.split, renderer=renderer,
                     pairs=self.config.pairs, points=self.config.points, kinds=self.config.questions)
        sample = {"images": s.images, "state": None, "actions": None, "action_is_pad": None, "prompt": s.question,
                  "target_text": s.answer, "robot_type": None}
        if s.point is not None:  # where the answer is, for the policy's point query (NaN: not asked)
            sample["subtask_point"] = s.point
        return sample
