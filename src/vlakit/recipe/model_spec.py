"""The ``model:`` section of a recipe: which components make the policy, and its geometry."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vlakit.config import FrozenModel
from vlakit.recipe.fields import Component


class InferenceSpec(FrozenModel):
    """How the policy acts at inference time."""

    #: which head produces the executed actions: the flow-matching expert or FAST decoding
    actions_from: Literal["flow_matching", "fast_autoregressive"] = "flow_matching"
    #: hierarchical inference: greedily decode the next subtask text before acting
    predict_subtask: bool = False
    max_subtask_tokens: int = Field(16, ge=1)
    #: Euler steps for flow matching (None = the head's default)
    num_steps: int | None = Field(None, ge=1)
    #: scale of the noise the flow-matching sampler starts from (openpi: 1, a sample of the learned
    #: action distribution; 0 starts every chunk from zero, a deterministic policy). Noise passed to
    #: ``sample_actions`` explicitly is used as given.
    noise_scale: float = Field(1.0, ge=0.0)


def _regex(v: str) -> re.Pattern[str]:
    try:
        return re.compile(v)
    except re.error as e:
        raise ValueError(f"not a regular expression ({e}): {v!r}") from None


class PointSlotSpec(FrozenModel):
    """How to ask for one slot of a subtask point. ``find`` (a regular expression) picks the names
    out of the predicted subtask, or else out of the task prompt; ``question`` asks where, each
    ``{}`` standing for one of ``find``'s groups in order. With ``when`` (a regular expression), the
    spec applies only to subtasks it matches ("move behind the red cube ..." asks where the push
    starts rather than where the cube is)."""

    find: str = Field(description="regular expression, one group per name the question needs; searched in the "
                                  "subtask text, then in the task prompt")
    question: str = Field(description="the pointing question; each '{}' stands for one of find's groups, in order")
    when: str | None = Field(None, description="regular expression the subtask text must match for this spec to "
                                               "apply (None: always)")

    @field_validator("find")
    @classmethod
    def _some_group(cls, v: str) -> str:
        groups = _regex(v).groups
        if groups < 1:
            raise ValueError(f"needs at least one group (the name to ask about), has none: {v!r}")
        return v

    @field_validator("when")
    @classmethod
    def _valid_when(cls, v: str | None) -> str | None:
        if v is not None:
            _regex(v)
        return v

    @model_validator(mode="after")
    def _blanks_match_groups(self) -> PointSlotSpec:
        q, groups = self.question, re.compile(self.find).groups
        if q.count("{}") != groups or q.replace("{}", "").count("{") or q.replace("{}", "").count("}"):
            raise ValueError(f"question needs exactly {groups} '{{}}' (one per group of find {self.find!r}) and no "
                             f"other braces: {q!r}")
        return self

    def ask(self, subtask: str, task: str) -> str | None:
        """The question for ``subtask`` (of an episode whose prompt is ``task``), or None when this
        spec does not apply or its names are not found."""
        if self.when is not None and re.search(self.when, subtask) is None:
            return None
        found = re.search(self.find, subtask) or re.search(self.find, task)
        if found is None or None in found.groups():  # a group that took no part names nothing
            return None
        return self.question.format(*found.groups())


class PointAskSpec(FrozenModel):
    """``point_query.ask``: point by asking. The query is trained and asked in the *pointing* format
    only -- a question such as "where is the red cube at?" with no robot state -- so it learns where
    things are from fresh scenes (pointing VQA) instead of recalling the robot's training scenes.
    At inference each predicted subtask yields up to two questions (``object`` fills `` at I J``,
    ``zone`` fills `` to I J``), asked in one extra prefix pass over the same images. A slot may list
    several specs: the first that applies and finds its names asks."""

    object: PointSlotSpec | list[PointSlotSpec] | None = None
    zone: PointSlotSpec | list[PointSlotSpec] | None = None

    @model_validator(mode="after")
    def _some_slot(self) -> PointAskSpec:
        if self.object is None and self.zone is None:
            raise ValueError("point_query.ask needs `object` and/or `zone`")
        for slot in ("object", "zone"):
            if getattr(self, slot) == []:
                raise ValueError(f"point_query.ask.{slot} lists no question; leave it out instead")
        return self

    def question(self, slot: str, subtask: str, task: str) -> str | None:
        """The pointing question for ``slot`` ("object" or "zone") of ``subtask``, or None."""
        specs = getattr(self, slot)
        if specs is None:
            return None
        for spec in specs if isinstance(specs, list) else [specs]:
            asked = spec.ask(subtask, task)
            if asked is not None:
                return asked
        return None


class PointQuerySpec(FrozenModel):
    """A learned query token on the VLM that regresses where the current subtask happens.

    The query joins the sequence after the prompt (a block of its own that no other token attends),
    a linear layer reads its last hidden state (or, with ``pointer``, it scores a camera's image
    tokens and points at their cells), and the ``point`` loss (weighted per stage) is the
    squared error against the data's subtask points (``Batch.subtask_point``: tabletop sources carry
    ``[object_x, object_y, zone_x, zone_y]``). At inference, with ``fill_subtask``, the predicted
    subtask's grid numbers (`` at I J`` / `` to I J``, see :mod:`vlakit.components.text.points`) are
    replaced by the query's, on a ``bins`` grid, before the action expert reads the text: position
    comes from a regression, which learns it far faster than cross-entropy over digit tokens
    (README: Results), while the words still come from the language model. With ``ask`` the query
    reads pointing questions instead of the robot's prompt (:class:`PointAskSpec`).
    """

    bins: int = Field(ge=2, le=100, description="grid of the subtask text's points (the data's subtask_points)")
    fill_subtask: bool = True
    #: point by asking (see :class:`PointAskSpec`); None: the query reads the robot's own prompt
    ask: PointAskSpec | None = None
    #: a camera of ``model.cameras``: read the point out as an attention pointer over that camera's
    #: image tokens (a square grid over the table, top = far side), see :class:`vlakit.policy.PointQuery`;
    #: None: a linear read-out of the query
    pointer: str | None = None


class ModelSpec(FrozenModel):
    """Components and sequence geometry of a :class:`~vlakit.policy.VLAPolicy`."""

    cameras: list[str] = Field(default_factory=lambda: ["base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"],
                               min_length=1)
    max_action_dim: int = Field(32, ge=1, description="state/action are zero-padded to this width")
    horizon: int = Field(50, ge=1, description="action chunk length H")
    max_token_len: int = Field(200, ge=8, description="max prompt tokens (prompt + state text)")
    max_target_tokens: int = Field(32, ge=1, description="max tokens of predicted text (subtask/answer)")
    vision: Component("vision_encoders")  # type: ignore[valid-type]
    language: Component("language_backbones")  # type: ignore[valid-type]
    text_tokenizer: Component("text_tokenizers", default_type="tabletop_bpe") = Field(  # type: ignore[valid-type]
        default_factory=lambda: {"type": "tabletop_bpe"}, validate_default=True)
    state: Component("state_encoders")  # type: ignore[valid-type]
    action_tokenizer: Component("action_tokenizers") | None = None  # type: ignore[valid-type]
    heads: dict[str, Component("action_heads")] = Field(min_length=1)  # type: ignore[valid-type]
    #: stop-gradient from the action expert into the backbone (knowledge insulation)
    knowledge_insulation: bool = False
    #: weight of the text cross-entropy is set per stage; this toggles whether text targets exist
    text_loss: bool = True
    #: ordinal label smoothing for number tokens in text targets (e.g. grid points "at 3 5"): the
    #: target of a number n is spread over the vocabulary's numbers m with weight exp(-(m-n)^2 / 2s^2),
    #: so a near miss costs less than a far one, as in regression. None: plain cross-entropy
    number_smoothing: float | None = Field(None, gt=0)
    #: a regression head for the subtask's grid points on the VLM (loss ``point``); None: none
    point_query: PointQuerySpec | None = None
    inference: InferenceSpec = Field(default_factory=InferenceSpec)

    @model_validator(mode="before")
    @classmethod
    def _head_type_defaults_to_key(cls, data: Any) -> Any:
        """``heads: {flow_matching: {...}}`` -- the key is the type unless ``type`` is given."""
        if isinstance(data, dict) and isinstance(data.get("heads"), dict):
            heads = {}
            for name, spec in data["heads"].items():
                if spec is None:
                    spec = {}
                if isinstance(spec, dict) and "type" not in spec:
                    spec = {"type": name, **spec}
                heads[name] = spec
            data = {**data, "heads": heads}
        return data

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"camera names must be unique, got {v}")
        return v

    @model_validator(mode="after")
    def _pointer_camera(self) -> ModelSpec:
        pointer = self.point_query.pointer if self.point_query is not None else None
        if pointer is not None and pointer not in self.cameras:
            raise ValueError(f"point_query.pointer {pointer!r} is not one of model.cameras {self.cameras}")
        return self

    @model_validator(mode="after")
    def _point_input_has_query(self) -> ModelSpec:
        reading = [name for name, head in self.heads.items() if getattr(head, "point_input", False)]
        if reading and self.point_query is None:
            raise ValueError(f"heads {reading} set point_input: the action expert reads the subtask point, which "
                             "at inference comes from model.point_query; the recipe has none")
        if reading and self.point_query.ask is not None and not self.inference.predict_subtask:
            raise ValueError(f"heads {reading} set point_input with point_query.ask, which asks about the predicted "
                             "subtask; set inference.predict_subtask: true (or drop ask)")
        return self
