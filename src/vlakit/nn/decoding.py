"""Greedy, KV-cached (or reference, uncached) decoding of one generated token segment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from vlakit.nn.runner import Context, SequenceRunner
from vlakit.nn.segments import Segment


@dataclass
class Decoded:
    """Result of :func:`greedy_decode`.

    Attributes:
        ids: B lists of generated LM ids (without the start token and without EOS).
        finished: bool ``[B]``, True where EOS was generated.
        context: the input context extended by every generated token (finished rows' later
            positions are invalid, so they are neither attended nor counted as positions).
    """

    ids: list[list[int]]
    finished: Tensor
    context: Context


@torch.no_grad()
def greedy_decode(*, runner: SequenceRunner, context: Context, embed_tokens: Callable[[Tensor], Tensor],
                  logits: Callable[[Tensor], Tensor], start_token: int, eos_token: int, allowed: Tensor,
                  max_tokens: int, name: str, batch_size: int, hidden_from_other_experts: bool = False,
                  token_lengths: Tensor | None = None, total_length: int | None = None) -> Decoded:
    """Greedy decoding on expert 0, one causal token per step, stopping when every row emitted EOS.

    Args:
        allowed: bool ``[V]``, the LM ids that may be generated (EOS is always allowed).
        max_tokens: generated tokens per row at most, EOS excluded.
        name: prefix of the per-step segment names (``f"{name}/{step}"``).
        hidden_from_other_experts: give the generated segments ``visibility="own_expert"``.
        token_lengths, total_length: exact-length decoding. ``token_lengths`` (long ``[V]``) is what
            each id contributes; a row may only take ids that fit in what is left of
            ``total_length`` (ids of length 0 never), and ends (EOS) exactly when nothing is left.
    """
    if (token_lengths is None) != (total_length is None):
        raise ValueError("token_lengths and total_length go together")
    device = allowed.device
    allowed = allowed.clone()
    allowed[eos_token] = True
    token = torch.full((batch_size,), start_token, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    ids: list[list[int]] = [[] for _ in range(batch_size)]
    if token_lengths is not None:
        token_lengths = token_lengths.to(device)
        remaining = torch.full((batch_size,), int(total_length), dtype=torch.long, device=device)
    visibility = "own_expert" if hidden_from_other_experts else "all"
    for step in range(max_tokens + 1):
        seg = Segment(f"{name}/{step}", embed_tokens(token[:, None]), (~finished)[:, None], expert=0,
                      attention="causal", visibility=visibility)
        result = runner.run([seg], context=context)
        context = result.context()
        mask = allowed[None].expand(batch_size, -1)
        if token_lengths is not None:
            fits = (token_lengths[None] <= remaining[:, None]) & (token_lengths[None] > 0)
            mask = mask & fits
            mask[:, eos_token] = remaining == 0  # end exactly when the length is reached, not before
            mask[~mask.any(dim=-1), eos_token] = True  # nothing fits: end, and the decoder reports it
        scores = logits(result.hidden[seg.name][:, -1]).masked_fill(~mask, float("-inf"))
        token = scores.argmax(dim=-1)
        if token_lengths is not None:
            remaining = remaining - torch.where(finished | (token == eos_token), 0, token_lengths[token])
        for b in (~finished).nonzero().flatten().tolist():
            if token[b].item() == eos_token:
                finished[b] = True
            elif step < max_tokens:
                ids[b].append(int(token[b]))
        if bool(finished.all()):
            break
    return Decoded(ids=ids, finished=finished, context=context)
