"""Segments and the one attention-mask builder (DESIGN §4).

Every part that feeds the backbone produces a :class:`Segment`. The policy concatenates
segments (all segments of expert 0 first, then expert 1, ...) and :func:`attention_mask` turns
their facts into one boolean mask:

* openpi's ``ar_mask`` cumsum rule: each token carries an ``ar`` flag (1 starts a new block);
  query i may attend key j iff ``cumsum(ar)[j] <= cumsum(ar)[i]`` and both are valid.
  ``attention="prefix"`` gives ar 0 everywhere (joins the block before it, bidirectionally),
  ``"causal"`` gives ar 1 everywhere, ``"block"`` gives ``[1, 0, 0, ...]`` (a new block that is
  bidirectional within itself).
* explicit "hidden from" pairs: a segment lists the names of segments whose queries must not see
  its keys; ``visibility="own_expert"`` hides it from the queries of every other expert (the FAST
  action tokens are hidden from the action expert this way); ``visibility="none"`` hides it from
  every other segment.

Positions (RoPE) are ``cumsum(valid) - 1`` over the whole sequence, so padding does not advance
them; with a KV cache they continue from the cache's ``next_position``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

Attention = Literal["prefix", "causal", "block"]


@dataclass
class Segment:
    """A run of tokens for one expert.

    Attributes:
        name: unique within a sequence, e.g. ``"image/base_0_rgb"``, ``"prompt"``, ``"text"``,
            ``"fast"``, ``"state"``, ``"actions"``.
        embeds: ``[B, N, D_e]`` input embeddings (``D_e`` = width of ``expert``).
        valid: bool ``[B, N]``; invalid tokens are neither attended nor given a position.
        expert: index of the backbone expert (weight set) that runs these tokens.
        attention: how the segment's tokens attend (see module docstring).
        hidden_from: names of segments whose queries may not attend this segment.
        visibility: ``"all"``, ``"own_expert"`` to hide the segment from other experts' queries, or
            ``"none"`` to hide it from every other segment (a read-out query such as the policy's
            point query); such tokens stay invisible in a KV cache too, yet count as positions.
    """

    name: str
    embeds: Tensor
    valid: Tensor
    expert: int
    attention: Attention
    hidden_from: tuple[str, ...] = field(default_factory=tuple)
    visibility: Literal["all", "own_expert", "none"] = "all"

    @property
    def length(self) -> int:
        return int(self.embeds.shape[1])

    def ar_flags(self) -> Tensor:
        """long ``[N]``: 1 where a token starts a new attention block."""
        n = self.length
        flags = torch.zeros(n, dtype=torch.long, device=self.embeds.device)
        if self.attention == "causal":
            flags[:] = 1
        elif self.attention == "block" and n:
            flags[0] = 1
        return flags


def check_segments(segments: list[Segment]) -> None:
    """Raise ValueError on duplicate names, shape mismatches, or experts out of order."""
    seen: set[str] = set()
    last_expert = -1
    for seg in segments:
        if seg.name in seen:
            raise ValueError(f"duplicate segment name {seg.name!r}")
        seen.add(seg.name)
        if seg.valid.shape != seg.embeds.shape[:2] or seg.valid.dtype != torch.bool:
            raise ValueError(f"segment {seg.name!r}: valid must be bool [B, N] = {tuple(seg.embeds.shape[:2])}, "
                             f"got {seg.valid.dtype} {tuple(seg.valid.shape)}")
        if seg.expert < last_expert:
            raise ValueError(f"segment {seg.name!r} (expert {seg.expert}) comes after a segment of expert "
                             f"{last_expert}; order segments by expert")
        last_expert = seg.expert


def hides(key: Segment, query: Segment) -> bool:
    """Whether ``key``'s tokens are hidden from ``query``'s (``hidden_from`` or ``visibility``),
    whatever their order in the sequence."""
    if key.visibility == "none":
        return key.name != query.name
    return query.name in key.hidden_from or (key.visibility == "own_expert" and key.expert != query.expert)


def attention_mask(segments: list[Segment], *, past_valid: Tensor | None = None) -> Tensor:
    """The boolean attention mask of a segment sequence.

    Args:
        segments: the new tokens, in sequence order (total length T).
        past_valid: bool ``[B, P]`` validity of cached keys; every valid new query may attend every
            valid cached key (cached tokens always precede and never hide from new ones).

    Returns:
        bool ``[B, T, P + T]``.
    """
    check_segments(segments)
    valid = torch.cat([s.valid for s in segments], dim=1)  # [B, T]
    ar = torch.cat([s.ar_flags() for s in segments])  # [T]
    block = torch.cumsum(ar, dim=0)
    mask = (block[None, :] <= block[:, None])[None] & valid[:, None, :] & valid[:, :, None]
    offsets = _offsets(segments)
    for key_seg in segments:
        ks, ke = offsets[key_seg.name]
        for query_seg in segments:
            if hides(key_seg, query_seg):
                qs, qe = offsets[query_seg.name]
                mask[:, qs:qe, ks:ke] = False
    if past_valid is not None:
        past = past_valid[:, None, :] & valid[:, :, None]
        mask = torch.cat([past, mask], dim=2)
    return mask


def positions(segments: list[Segment], *, start: Tensor | None = None) -> Tensor:
    """long ``[B, T]`` RoPE positions: ``start + cumsum(valid) - 1`` (``start`` ``[B]``, default 0)."""
    valid = torch.cat([s.valid for s in segments], dim=1)
    pos = torch.cumsum(valid.long(), dim=1) - 1
    if start is not None:
        pos = pos + start[:, None]
    return pos


def _offsets(segments: list[Segment]) -> dict[str, tuple[int, int]]:
    out, at = {}, 0
    for s in segments:
        out[s.name] = (at, at + s.length)
        at += s.length
    return out


def streams_by_expert(segments: list[Segment], num_experts: int) -> list[Tensor | None]:
    """Concatenate segment embeddings per expert: one ``[B, N_e, D_e]`` (or None) per expert."""
    check_segments(segments)
    out: list[Tensor | None] = []
    for e in range(num_experts):
        parts = [s.embeds for s in segments if s.expert == e]
        out.append(torch.cat(parts, dim=1) if parts else None)
    extra = sorted({s.expert for s in segments if s.expert >= num_experts})
    if extra:
        raise ValueError(f"segments use expert(s) {extra} but the backbone has {num_experts} expert(s)")
    return out


def split_outputs(segments: list[Segment], outputs: list[Tensor | None]) -> dict[str, Tensor]:
    """Inverse of :func:`streams_by_expert` on backbone outputs: segment name -> ``[B, N, D_e]``."""
    result: dict[str, Tensor] = {}
    cursor = [0] * len(outputs)
    for s in segments:
        stream = outputs[s.expert]
        if stream is None:
            raise ValueError(f"backbone returned no output for expert {s.expert} (segment {s.name!r})")
        at = cursor[s.expert]
        result[s.name] = stream[:, at:at + s.length]
        cursor[s.expert] = at + s.length
    return result
