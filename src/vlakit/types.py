"""Typed containers that cross component boundaries. Shapes are documented on every field.

Notation: ``B`` batch, ``H`` action horizon, ``A`` padded action dim (``max_action_dim``),
``S`` padded state dim (= ``A``), ``h, w`` image height/width, ``N`` tokens, ``D`` width.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # keep this module importable without torch at type-check time only
    import torch


@dataclass
class Observation:
    """What the policy sees at one time step (already normalised, padded, batched).

    Attributes:
        images: camera name -> uint8 ``[B, h, w, 3]``. Camera order is the recipe's
            ``model.cameras`` order; a missing camera is present as zeros with mask False.
        image_masks: camera name -> bool ``[B]`` (False = camera missing for that sample).
        state: float32 ``[B, S]``, normalised to about [-1, 1], zero-padded past the robot's dims.
        state_mask: bool ``[B, S]``, True on the robot's real state dims.
        prompt: B task/question strings (raw text; the policy tokenizes).
    """

    images: dict[str, torch.Tensor]
    image_masks: dict[str, torch.Tensor]
    state: torch.Tensor
    state_mask: torch.Tensor
    prompt: list[str]

    @property
    def batch_size(self) -> int:
        return len(self.prompt)

    def to(self, device: torch.device | str) -> Observation:
        return replace(
            self,
            images={k: v.to(device) for k, v in self.images.items()},
            image_masks={k: v.to(device) for k, v in self.image_masks.items()},
            state=self.state.to(device),
            state_mask=self.state_mask.to(device),
        )

    def take(self, index: torch.Tensor) -> Observation:
        """The samples at ``index`` (long ``[M]``, repeats allowed), in that order."""
        rows = index.tolist()
        return Observation(
            images={k: v[index.to(v.device)] for k, v in self.images.items()},
            image_masks={k: v[index.to(v.device)] for k, v in self.image_masks.items()},
            state=self.state[index.to(self.state.device)],
            state_mask=self.state_mask[index.to(self.state_mask.device)],
            prompt=[self.prompt[i] for i in rows],
        )


@dataclass
class Batch:
    """One training batch: an observation plus every supervision target.

    Samples from heterogeneous sources share one batch: robot episodes carry actions, VQA and
    high-level samples carry only ``target_text``. Losses read the masks below and ignore samples
    (or positions) that have no target.

    Attributes:
        observation: see :class:`Observation`.
        actions: float32 ``[B, H, A]`` normalised action chunk, zero-padded; zeros when absent.
        action_is_pad: bool ``[B, H]``, True on timesteps past the episode end.
        action_dim_mask: bool ``[B, A]``, True on the robot's real action dims.
        has_actions: bool ``[B]``, True for samples with a real action chunk.
        target_text: B strings or None -- text the model must predict after the prefix
            (next subtask for robot/high-level samples, answer for VQA samples).
        source: B data-source names (reported when a loss goes non-finite).
        raw_actions: optional float32 ``[B, H, A]`` unnormalised actions (diagnostics only).
        subtask_point: optional float32 ``[B, P]``: where the current subtask happens (tabletop:
            object x, y and zone x, y on the unit table), NaN where a sample has no such point. Read
            by auxiliary losses (``flow_matching.point_weight``).
    """

    observation: Observation
    actions: torch.Tensor
    action_is_pad: torch.Tensor
    action_dim_mask: torch.Tensor
    has_actions: torch.Tensor
    target_text: list[str | None]
    source: list[str] = field(default_factory=list)
    raw_actions: torch.Tensor | None = None
    subtask_point: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.observation.batch_size

    def to(self, device: torch.device | str) -> Batch:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "observation":
                moved[f.name] = value.to(device)
            elif hasattr(value, "to") and not isinstance(value, (str, list)):
                moved[f.name] = value.to(device)
            else:
                moved[f.name] = value
        return Batch(**moved)

    def take(self, index: torch.Tensor) -> Batch:
        """The samples at ``index`` (long ``[M]``, repeats allowed), in that order."""
        rows = index.tolist()
        picked = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "observation":
                picked[f.name] = value.take(index)
            elif isinstance(value, list):
                picked[f.name] = [value[i] for i in rows] if value else []
            elif value is None:
                picked[f.name] = None
            else:
                picked[f.name] = value[index.to(value.device)]
        return Batch(**picked)


@dataclass
class ActionChunk:
    """Actions predicted by a policy for one observation batch.

    Attributes:
        actions: float32 ``[B, H, A]`` in normalised units (the policy wrapper unnormalises).
        valid: bool ``[B]`` -- False where decoding failed (e.g. an undecodable FAST sequence);
            such rows must not be executed. ``errors`` says why.
        errors: B strings or None.
        subtask: B predicted subtask strings (hierarchical inference) or None.
        points: float32 ``[B, P]`` where the subtask happens, in table coordinates, from the
            policy's point query (``model.point_query``), or None.
    """

    actions: torch.Tensor
    valid: torch.Tensor
    errors: list[str | None]
    subtask: list[str | None] | None = None
    points: torch.Tensor | None = None
