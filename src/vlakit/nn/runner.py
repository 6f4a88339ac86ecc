"""Run segments through a language backbone, over a KV cache or over a recomputed prefix.

Heads use :class:`SequenceRunner` for both inference paths with the same code: the *context* of a
call is either a :class:`~vlakit.nn.attention.KVCache` (cached path: only the new segments run)
or a list of earlier segments (reference path: everything is recomputed every call).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from vlakit.nn.attention import KVCache
from vlakit.nn.segments import Segment, attention_mask, positions, split_outputs, streams_by_expert

if TYPE_CHECKING:
    from vlakit.interfaces.language import BackboneOutput, LanguageBackbone

Context = KVCache | list[Segment] | None


@dataclass
class RunResult:
    """Outputs of :meth:`SequenceRunner.run`.

    Attributes:
        hidden: segment name -> ``[B, N, D_e]`` for the *new* segments.
        segments: the new segments.
        previous: the context the run started from.
        output: the raw backbone output of this run.
        valid: bool ``[B, T]`` validity of this run's tokens (all of them, context included when
            the context is a segment list).
        next_position: long ``[B]`` position after the last valid token of this run.
    """

    hidden: dict[str, Tensor]
    segments: list[Segment]
    previous: Context
    output: BackboneOutput
    valid: Tensor
    next_position: Tensor

    def context(self) -> KVCache | list[Segment]:
        """The context for the next call: the cache extended by this run, or the longer segment list."""
        if isinstance(self.previous, list):
            return [*self.previous, *self.segments]
        # a cached token cannot hide from later queries, so segments visible to no one are made
        # invalid keys (they still count as positions)
        visible = self.valid  # here this run's segments only: a cache or nothing came before
        if any(s.visibility == "none" for s in self.segments):
            visible = torch.cat([s.valid & (s.visibility != "none") for s in self.segments], dim=1)
        if isinstance(self.previous, KVCache):
            cache = self.previous.extended(keys=self.output.keys, values=self.output.values, valid=self.valid)
            return replace(cache, valid=torch.cat([self.previous.valid, visible], dim=1))
        return KVCache(keys=list(self.output.keys), values=list(self.output.values), valid=visible,
                       next_position=self.next_position)


class SequenceRunner:
    """Builds mask and positions for segments and runs the backbone.

    Args:
        backbone: the language backbone.
        knowledge_insulation: stop gradients from experts >= 1 into expert 0 (see the backbone).
    """

    def __init__(self, backbone: LanguageBackbone, *, knowledge_insulation: bool = False) -> None:
        self.backbone = backbone
        self.knowledge_insulation = knowledge_insulation

    def run(self, segments: list[Segment], *, context: Context = None,
            conds: Mapping[int, Tensor | None] | None = None) -> RunResult:
        """Run ``segments`` after ``context``; returns the new segments' hidden states.

        ``conds`` maps expert index -> ``[B, D_e]`` adaRMS condition.
        """
        if not segments:
            raise ValueError("SequenceRunner.run needs at least one segment")
        num_experts = len(self.backbone.expert_widths)
        cache: KVCache | None = None
        if isinstance(context, KVCache):
            cache = context
            todo = segments
            mask = attention_mask(todo, past_valid=cache.valid)
            pos = positions(todo, start=cache.next_position)
        else:
            todo = [*(context or []), *segments]
            mask = attention_mask(todo)
            pos = positions(todo)
        cond_list = [(conds or {}).get(i) for i in range(num_experts)]
        out = self.backbone(streams_by_expert(todo, num_experts), attn_mask=mask, positions=pos, conds=cond_list,
                            cache=cache, knowledge_insulation=self.knowledge_insulation)
        hidden = split_outputs(todo, out.hidden)
        valid = torch.cat([s.valid for s in todo], dim=1)
        start = cache.next_position if cache is not None else torch.zeros_like(valid[:, 0], dtype=torch.long)
        return RunResult(hidden={s.name: hidden[s.name] for s in segments}, segments=list(segments),
                         previous=context, output=out, valid=valid,
                         next_position=start + valid.sum(dim=1))
