"""Action head interface: contributes segments to the training sequence, turns their outputs
into a loss, and at inference turns a prefix context into actions.

Build context: ``Config.build(*, context: HeadContext)``. A head Config may ask the backbone for
an extra expert through ``expert_request(owner) -> ExpertRequest | None`` (None = it runs on
expert 0) and may check vocabulary ranges through ``check_vocab(...)``; both run before any
weight is built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from torch import Tensor, nn

from vlakit.nn.runner import Context, SequenceRunner
from vlakit.nn.segments import Segment

if TYPE_CHECKING:
    from vlakit.types import ActionChunk, Batch


@dataclass(frozen=True)
class HeadContext:
    """Numbers and shared objects a head is built with.

    Attributes:
        horizon: action chunk length ``H``.
        action_dim: padded action width ``A`` (``max_action_dim``).
        vocab_size: LM vocabulary size.
        backbone_width: width of expert 0.
        expert_index: the expert this head's segments run on (0 = the language model).
        expert_width: width of that expert.
        text_tokenizer: the policy's :class:`~vlakit.interfaces.text_tokenizer.TextTokenizer`.
        action_tokenizer: the policy's action tokenizer or None.
    """

    horizon: int
    action_dim: int
    vocab_size: int
    backbone_width: int
    expert_index: int
    expert_width: int
    text_tokenizer: Any
    action_tokenizer: Any | None


@dataclass
class TrainingInputs:
    """What the policy hands a head to build its training segments.

    Attributes:
        batch: the training batch.
        embed_tokens: long ``[B, N]`` -> ``[B, N, D_0]`` (the backbone's scaled embedding).
        state_tokens: ``[B, N_s, D_e]`` from the state encoder, or None.
        start_token: LM id that starts a generated segment (the text tokenizer's BOS).
        eos_token: LM id that ends a generated segment (the text tokenizer's EOS).
    """

    batch: Batch
    embed_tokens: Callable[[Tensor], Tensor]
    state_tokens: Tensor | None
    start_token: int
    eos_token: int


@dataclass
class InferenceInputs:
    """What the policy hands a head at inference.

    Attributes:
        runner: runs segments over ``context``.
        context: the prefix (and decoded subtask) as a KV cache, or as segments for the uncached
            reference path.
        state_tokens: ``[B, N_s, D_e]`` or None.
        batch_size: ``B``.
        start_token: LM id that starts a generated segment (text or action tokens).
        eos_token: LM id that ends a generated segment.
        embed_tokens: long ``[B, N]`` -> ``[B, N, D_0]``.
        logits: expert-0 hidden ``[B, N, D_0]`` -> float32 ``[B, N, V]``.
        points: the subtask points ``[B, P]`` in table coordinates (NaN where unknown) from the
            policy's point query, or None without one.
        noise_scale: factor on the noise a sampling head draws itself (``inference.noise_scale``).
    """

    runner: SequenceRunner
    context: Context
    state_tokens: Tensor | None
    batch_size: int
    start_token: int
    eos_token: int
    embed_tokens: Callable[[Tensor], Tensor]
    logits: Callable[[Tensor], Tensor]
    points: Tensor | None = None
    noise_scale: float = 1.0


@dataclass
class HeadPass:
    """A head's contribution to one training pass.

    Attributes:
        segments: segments to add to the sequence (names unique to the head).
        conds: expert index -> ``[B, D_e]`` adaRMS condition for that expert.
        aux: head-private tensors the loss needs (e.g. the sampled noise and time).
    """

    segments: list[Segment]
    conds: dict[int, Tensor] = field(default_factory=dict)
    aux: dict[str, Any] = field(default_factory=dict)


class ActionHead(nn.Module, ABC):
    """One way of producing actions (and its training loss)."""

    Config: ClassVar[type]

    #: training draws per sample that has actions. 1: the head's segments join the one joint pass.
    #: k > 1: the policy runs the prefix once, then this head's segments over the prefix's keys and
    #: values (with gradients) for only the samples that have actions, each repeated k times, so the
    #: head's own randomness (flow noise and time) is drawn k times per observation.
    samples_per_observation: int = 1

    @abstractmethod
    def prepare(self, inputs: TrainingInputs) -> HeadPass:
        """Build this head's training segments (and whatever its loss needs)."""

    @abstractmethod
    def loss(self, *, inputs: TrainingInputs, prepared: HeadPass, hidden: dict[str, Tensor],
             logits: Callable[[Tensor], Tensor]) -> Tensor:
        """Scalar loss from the hidden states of this head's segments.

        Args:
            inputs: the object passed to :meth:`prepare`.
            prepared: what :meth:`prepare` returned.
            hidden: segment name -> ``[B, N, D_e]`` backbone outputs.
            logits: expert-0 hidden ``[B, N, D_0]`` -> float32 logits ``[B, N, V]``.
        """

    @abstractmethod
    def sample(self, inputs: InferenceInputs, *, noise: Tensor | None = None,
               num_steps: int | None = None) -> ActionChunk:
        """Actions ``[B, H, A]`` (normalised units) for the context in ``inputs``."""

    @property
    def reads_points(self) -> bool:
        """Whether :meth:`sample` reads ``InferenceInputs.points`` (the policy then supplies them).
        Default: no."""
        return False

    def stats(self) -> dict[str, int]:
        """Counters worth logging (e.g. samples skipped). Default: none."""
        return {}
