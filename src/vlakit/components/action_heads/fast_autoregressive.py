"""``fast_autoregressive``: action chunks as FAST codes predicted by the language model (π0-FAST,
the π0.5 pre-training target).

The head owns the map from action-tokenizer codes to LM ids: code ``c`` is LM id
``vocab_size - 1 - reserved_tail - c`` (openpi's PaliGemma mapping with ``reserved_tail=128``); the
map is its own inverse. The training segment is ``[start, ids...]`` with targets ``[ids..., EOS]``,
causal, on expert 0, and hidden from the action expert. Inference decodes greedily with a KV cache,
allowing only action ids and EOS, and stops early when every row has emitted EOS. A row that does not
end or does not decode is reported in ``ActionChunk.valid``/``errors`` (actions NaN), never zeros.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from vlakit.config import ComponentConfig
from vlakit.interfaces.action_head import ActionHead, HeadContext, HeadPass, InferenceInputs, TrainingInputs
from vlakit.nn.decoding import greedy_decode
from vlakit.nn.segments import Segment
from vlakit.registry import ACTION_HEADS
from vlakit.types import ActionChunk


class FastAutoregressiveConfig(ComponentConfig):
    """Autoregressive action-token head.

    Attributes:
        reserved_tail: LM ids at the very top of the vocabulary left out of the action range
            (PaliGemma's 128 ``<seg>`` tokens: 128; a vocabulary sized for the tokenizers: 0).
        max_tokens: most action tokens per chunk (longer training chunks are skipped and counted).
    """

    type: Literal["fast_autoregressive"] = "fast_autoregressive"
    reserved_tail: int = Field(0, ge=0)
    max_tokens: int = Field(256, ge=1)
    #: decode exactly horizon x action_dim values when the tokenizer knows each code's length
    #: (FAST: DCT coefficients per BPE token), so a chunk can only fail by running out of tokens
    exact_length: bool = True

    def expert_request(self, owner: str) -> None:
        return None

    def action_id_range(self, *, vocab_size: int, action_vocab_size: int) -> tuple[int, int]:
        """(lowest, highest) LM id used for action codes."""
        high = vocab_size - 1 - self.reserved_tail
        return high - (action_vocab_size - 1), high

    def check_vocab(self, *, vocab_size: int, text_vocab_size: int, action_vocab_size: int | None) -> str | None:
        """A problem description if the action codes do not fit the LM vocabulary, else None."""
        if action_vocab_size is None:
            return "needs an action tokenizer (model.action_tokenizer) but the recipe has none"
        low, high = self.action_id_range(vocab_size=vocab_size, action_vocab_size=action_vocab_size)
        if low < 0:
            return (f"{action_vocab_size} action codes with reserved_tail {self.reserved_tail} do not fit an LM "
                    f"vocabulary of {vocab_size} (they would need ids down to {low})")
        if low < text_vocab_size:
            return (f"action codes map to LM ids [{low}, {high}], which overlap the text tokenizer's ids "
                    f"[0, {text_vocab_size}); enlarge model.language.vocab_size to at least "
                    f"{text_vocab_size + action_vocab_size + self.reserved_tail} or leave it unset")
        return None

    def build(self, *, context: HeadContext) -> FastAutoregressiveHead:
        if context.action_tokenizer is None:
            raise ValueError("fast_autoregressive needs an action tokenizer (model.action_tokenizer)")
        low, high = self.action_id_range(vocab_size=context.vocab_size,
                                         action_vocab_size=context.action_tokenizer.vocab_size)
        return FastAutoregressiveHead(action_tokenizer=context.action_tokenizer, vocab_size=context.vocab_size,
                                      first_action_id=low, last_action_id=high, horizon=context.horizon,
                                      action_dim=context.action_dim, max_tokens=self.max_tokens,
                                      exact_length=self.exact_length)


@ACTION_HEADS.register
class FastAutoregressiveHead(ActionHead):
    """Cross-entropy on action tokens and constrained greedy decoding. Has no parameters of its own."""

    Config = FastAutoregressiveConfig

    def __init__(self, *, action_tokenizer: Any, vocab_size: int, first_action_id: int, last_action_id: int,
                 horizon: int, action_dim: int, max_tokens: int = 256, exact_length: bool = True) -> None:
        super().__init__()
        self.action_tokenizer = action_tokenizer
        self.vocab_size = vocab_size
        self.first_action_id, self.last_action_id = first_action_id, last_action_id
        self.horizon, self.action_dim, self.max_tokens = horizon, action_dim, max_tokens
        self.exact_length = exact_length
        self.chunks_skipped_too_long = 0

    def codes_to_ids(self, codes: list[int]) -> list[int]:
        return [self.last_action_id - c for c in codes]

    def ids_to_codes(self, ids: list[int]) -> list[int]:
        return [self.last_action_id - i for i in ids]

    def prepare(self, inputs: TrainingInputs) -> HeadPass:
        batch = inputs.batch
        if not getattr(self.action_tokenizer, "is_fitted", True):
            raise ValueError("the action tokenizer is not fitted; fit it on the training actions before training "
                             "the fast_autoregressive head")
        device = batch.actions.device
        has = batch.has_actions.tolist()
        rows = [i for i, h in enumerate(has) if h]
        codes: dict[int, list[int]] = {}
        if rows:
            encoded = self.action_tokenizer.encode(batch.actions[rows].detach().float().cpu().numpy())
            for i, c in zip(rows, encoded):
                if len(c) > self.max_tokens:
                    self.chunks_skipped_too_long += 1
                else:
                    codes[i] = c
        length = 1 + max((len(c) for c in codes.values()), default=0)
        b = batch.batch_size
        inp = torch.full((b, length), inputs.start_token, dtype=torch.long)
        labels = torch.full((b, length), inputs.eos_token, dtype=torch.long)
        valid = torch.zeros(b, length, dtype=torch.bool)
        for i, c in codes.items():
            ids = self.codes_to_ids(c)
            inp[i, 1:1 + len(ids)] = torch.tensor(ids, dtype=torch.long)
            labels[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            valid[i, :len(ids) + 1] = True
        inp, labels, valid = inp.to(device), labels.to(device), valid.to(device)
        seg = Segment("fast", inputs.embed_tokens(inp), valid, expert=0, attention="causal",
                      visibility="own_expert")
        return HeadPass(segments=[seg], aux={"labels": labels, "valid": valid})

    def loss(self, *, inputs: TrainingInputs, prepared: HeadPass, hidden: dict[str, Tensor], logits: Any) -> Tensor:
        h = hidden["fast"]
        valid = prepared.aux["valid"]
        scores = logits(h)  # [B, N, V] float32
        ce = F.cross_entropy(scores.flatten(0, 1), prepared.aux["labels"].flatten(), reduction="none")
        w = valid.flatten().float()
        return (ce * w).sum() / w.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample(self, inputs: InferenceInputs, *, noise: Tensor | None = None,
               num_steps: int | None = None) -> ActionChunk:
        """Greedy constrained decoding. ``noise`` and ``num_steps`` do not apply and are ignored."""
        b = inputs.batch_size
        device = _device_of(inputs)
        allowed = torch.zeros(self.vocab_size, dtype=torch.bool, device=device)
        allowed[self.first_action_id:self.last_action_id + 1] = True
        lengths = self.token_lengths() if self.exact_length else None
        decoded = greedy_decode(runner=inputs.runner, context=inputs.context, embed_tokens=inputs.embed_tokens,
                                logits=inputs.logits, start_token=inputs.start_token, eos_token=inputs.eos_token,
                                allowed=allowed, max_tokens=self.max_tokens, name="fast", batch_size=b,
                                hidden_from_other_experts=True, token_lengths=lengths,
                                total_length=None if lengths is None else self.horizon * self.action_dim)
        actions = torch.full((b, self.horizon, self.action_dim), float("nan"), dtype=torch.float32)
        valid = torch.zeros(b, dtype=torch.bool)
        errors: list[str | None] = [None] * b
        ok_rows = [i for i in range(b) if bool(decoded.finished[i])]
        for i in range(b):
            if i not in ok_rows:
                errors[i] = f"no end-of-sequence within {self.max_tokens} action tokens"
        if ok_rows:
            result = self.action_tokenizer.decode([self.ids_to_codes(decoded.ids[i]) for i in ok_rows],
                                                  horizon=self.horizon, action_dim=self.action_dim)
            for j, i in enumerate(ok_rows):
                if bool(result.ok[j]):
                    actions[i] = torch.as_tensor(np.asarray(result.actions[j]), dtype=torch.float32)
                    valid[i] = True
                else:
                    errors[i] = result.errors[j] or "action tokens could not be decoded"
        return ActionChunk(actions=actions.to(device), valid=valid.to(device), errors=errors)

    def token_lengths(self) -> Tensor | None:
        """long ``[vocab_size]``: values each LM id decodes to (0 outside the action range), or None
        when the action tokenizer cannot say (then decoding is not length-constrained)."""
        per_code = self.action_tokenizer.code_lengths()
        if per_code is None:
            return None
        out = torch.zeros(self.vocab_size, dtype=torch.long)
        codes = torch.arange(len(per_code))
        out[self.last_action_id - codes] = torch.as_tensor(per_code, dtype=torch.long)
        return out

    def stats(self) -> dict[str, int]:
        return {"fast_chunks_skipped_too_long": self.chunks_skipped_too_long}


def _device_of(inputs: InferenceInputs) -> torch.device:
    ctx = inputs.context
    if isinstance(ctx, list):
        return ctx[0].embeds.device
    return ctx.valid.device  # type: ignore[union-attr]
