"""Language backbone interface: one decoder stack with one or more *experts* sharing attention.

Expert 0 is the language model: it owns the token embedding and the tied LM head. Further experts
(e.g. the flow-matching action expert) have their own per-layer weights, see the same joint
attention and share RoPE positions, but have no embedding or LM head.

Build context: ``Config.build(*, vocab_size, experts)`` where ``experts`` lists one
:class:`ExpertRequest` per extra expert (index 1, 2, ...). The Config also answers geometry
questions before anything is built (:meth:`LanguageBackboneConfig.geometry`), so the composition
root can check that experts agree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from vlakit.config import ComponentConfig
from vlakit.nn.attention import KVCache


@dataclass(frozen=True)
class ExpertGeometry:
    """Sizes of one expert. Experts of one backbone must agree on all but ``width``/``mlp_dim``."""

    variant: str
    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    def shared(self) -> dict[str, int]:
        """The fields every expert of one stack must agree on."""
        return {"depth": self.depth, "num_heads": self.num_heads, "num_kv_heads": self.num_kv_heads,
                "head_dim": self.head_dim}


@dataclass(frozen=True)
class ExpertRequest:
    """An extra expert asked for by another component.

    Attributes:
        owner: dotted recipe path of the asking component (for error messages).
        variant: a variant name the backbone knows (e.g. ``"gemma_300m"``).
        adaptive_norms: True for adaRMSNorm (conditioned on a ``[B, width]`` vector) in every norm.
    """

    owner: str
    variant: str
    adaptive_norms: bool


class LanguageBackboneConfig(ComponentConfig, ABC):
    """Base Config of language backbones: geometry is known without building."""

    @abstractmethod
    def geometry(self, variant: str | None = None) -> ExpertGeometry:
        """Geometry of ``variant`` (None = this backbone's own, expert 0). Raises on unknown names."""

    @abstractmethod
    def default_vocab_size(self) -> int | None:
        """The recipe's LM vocabulary size, or None to let the builder size it from the tokenizers."""


@dataclass
class BackboneOutput:
    """Result of one pass.

    Attributes:
        hidden: one ``[B, N_e, D_e]`` tensor (after the expert's final norm) or None per expert.
        keys, values: per layer, ``[B, K, T, hd]`` keys (rotated) and values of the new tokens of all
            experts in sequence order -- what a KV cache appends.
    """

    hidden: list[Tensor | None]
    keys: list[Tensor]
    values: list[Tensor]


class LanguageBackbone(nn.Module, ABC):
    """A decoder stack with experts, joint attention, token embedding and tied LM head."""

    Config: ClassVar[type]

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def expert_widths(self) -> list[int]:
        """Width of each expert, index 0 first."""

    @abstractmethod
    def embed(self, token_ids: Tensor) -> Tensor:
        """long ``[B, N]`` -> ``[B, N, D_0]`` (scaled by sqrt(D_0))."""

    @abstractmethod
    def logits(self, hidden: Tensor) -> Tensor:
        """Expert-0 hidden ``[B, N, D_0]`` -> float32 ``[B, N, vocab_size]`` (tied to the embedding)."""

    @abstractmethod
    def forward(self, streams: Sequence[Tensor | None], *, attn_mask: Tensor, positions: Tensor,
                conds: Sequence[Tensor | None] | None = None, cache: KVCache | None = None,
                knowledge_insulation: bool = False) -> BackboneOutput:
        """Run the stack.

        Args:
            streams: per expert ``[B, N_e, D_e]`` or None (expert skipped); sequence order is
                expert 0's tokens, then expert 1's, ... (total ``T``).
            attn_mask: bool ``[B, T, P + T]`` (``P`` = cached tokens, 0 without a cache).
            positions: long ``[B, T]`` RoPE positions.
            conds: per expert, the ``[B, D_e]`` adaRMS condition or None.
            cache: keys/values of ``P`` earlier tokens; prepended to this pass's keys/values.
            knowledge_insulation: queries of experts >= 1 see detached expert-0 (and cached) keys and
                values, so no gradient flows from them into expert 0.
        """

    @abstractmethod
    def expert_parameters(self, index: int) -> list[nn.Parameter]:
        """Parameters of one expert (expert 0 includes the embedding)."""

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The token embedding's parameters (part of expert 0's). Default: none."""
        return []
