"""``VLAPolicy``: builds the segment sequence, computes the named losses, samples actions.

Training sequence (DESIGN §4), in order: one image segment per camera and the prompt (expert 0,
bidirectional prefix), the target text (expert 0, causal; subtask or answer), then each requested
head's segments -- FAST tokens (expert 0, causal, hidden from other experts) and the state/action
blocks of the flow head (action expert). One backbone pass serves every loss.

Inference is hierarchical: the prefix runs once into a KV cache, the subtask is optionally decoded
greedily (extending the cache), and the head named by ``model.inference.actions_from`` acts on that
cache -- the flow head runs only the action expert per Euler step. With ``model.point_query.ask`` the
decoded subtask's grid points are replaced by the point query's answers to pointing questions about
it (one more prefix pass, :meth:`VLAPolicy.ask_points`) before the expert reads the text.
:meth:`VLAPolicy.sample_actions_uncached` is the reference path that recomputes everything every
step (tests and benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vlakit.components.text.points import POINT_DIM, SLOTS, fill_points, point_slots
from vlakit.errors import VlakitError
from vlakit.interfaces.action_head import ActionHead, InferenceInputs, TrainingInputs
from vlakit.interfaces.language import LanguageBackbone
from vlakit.interfaces.state import StateEncoder
from vlakit.interfaces.vision import VisionEncoder
from vlakit.nn.attention import KVCache
from vlakit.nn.decoding import greedy_decode
from vlakit.nn.point_regression import point_mse, to_scaled, to_table
from vlakit.nn.runner import Context, RunResult, SequenceRunner
from vlakit.nn.segments import Segment, hides
from vlakit.types import ActionChunk, Batch, Observation

TEXT_LOSS = "text"
POINT_LOSS = "point"


class PolicyInputError(VlakitError, ValueError):
    """An observation or batch the policy cannot use (missing camera, prompt too long, ...)."""


class PointQuery(nn.Module):
    """``model.point_query``: a learned query token on expert 0 and a read-out of where the subtask
    happens (``[object_x, object_y, zone_x, zone_y]``), scaled as in :mod:`vlakit.nn.point_regression`.

    The read-out is linear in the query's last hidden state, or with ``pointer`` (a camera) an
    attention pointer over that camera's image tokens: per slot (object, zone) the query's hidden
    state scores each token's hidden state, and the point is the scored mean of the tokens' cell
    positions (learned, starting at the centres of a grid over the table) plus a per-token offset
    read from the token. Choosing the named object's cells is then a direct function of the scores,
    instead of something the linear read-out must find through every attention layer first.
    """

    def __init__(self, width: int, *, pointer: str | None = None, num_tokens: int = 0, key_dim: int = 32) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pointer = pointer
        if pointer is None:
            self.head = nn.Linear(width, POINT_DIM)
            return
        grid = math.isqrt(num_tokens)
        if grid * grid != num_tokens:
            raise ValueError(f"point_query.pointer needs a square grid of image tokens, camera {pointer!r} has "
                             f"{num_tokens}")
        self.key_dim = key_dim
        self.slots = POINT_DIM // 2
        self.q_proj = nn.Linear(width, self.slots * key_dim)
        self.k_proj = nn.Linear(width, key_dim)
        self.offset = nn.Linear(width, 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        # token t = row * grid + col, row 0 at the image's top (the table's far side, +y), scaled coordinates
        centre = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid
        x = centre.repeat(grid)
        y = (1.0 - centre).repeat_interleave(grid)
        self.cells = nn.Parameter(to_scaled(torch.stack([x, y], dim=-1)))

    def segment(self, batch_size: int, device: torch.device) -> Segment:
        """One token after the prompt, in a block of its own, attended by no other segment."""
        return Segment("point_query", self.query.expand(batch_size, 1, -1).to(device),
                       torch.ones(batch_size, 1, dtype=torch.bool, device=device), expert=0, attention="block",
                       visibility="none")

    def scaled(self, hidden: dict[str, Tensor]) -> Tensor:
        """A run's hidden states (the query's ``[B, 1, D]``, and with ``pointer`` the camera's image
        tokens) -> ``[B, 4]`` prediction in the scaled coordinates."""
        h = hidden["point_query"][:, 0]
        if self.pointer is None:
            return self.head(h.to(self.head.weight.dtype)).float()
        dtype = self.q_proj.weight.dtype  # the weights' dtype, as for the linear read-out (bf16-true too)
        image = hidden[f"image/{self.pointer}"].to(dtype)  # [B, N, D]
        q = self.q_proj(h.to(dtype)).view(h.shape[0], self.slots, self.key_dim)  # [B, S, K]
        k = self.k_proj(image)  # [B, N, K]
        weights = torch.softmax(torch.einsum("bsk,bnk->bsn", q, k) * self.key_dim ** -0.5, dim=-1)
        where = self.cells.unsqueeze(0) + self.offset(image)  # [B, N, 2]
        return torch.einsum("bsn,bnc->bsc", weights, where).flatten(1).float()


class VLAPolicy(nn.Module):
    """A vision-language-action policy assembled from components by :func:`vlakit.recipe.build.build_policy`.

    Attributes:
        spec: the :class:`~vlakit.recipe.model_spec.ModelSpec` it was built from.
        text_tokenizer: prompt/subtask tokenizer.
        action_tokenizer: the action tokenizer, or None.
    """

    def __init__(self, *, spec: Any, vision: VisionEncoder, language: LanguageBackbone, state: StateEncoder,
                 heads: dict[str, ActionHead], text_tokenizer: Any, action_tokenizer: Any | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.vision = vision
        self.language = language
        self.state_encoder = state
        self.heads = nn.ModuleDict(heads)
        self.text_tokenizer = text_tokenizer
        self.action_tokenizer = action_tokenizer
        self.runner = SequenceRunner(language, knowledge_insulation=spec.knowledge_insulation)
        self.point_query = (PointQuery(language.expert_widths[0], pointer=spec.point_query.pointer,
                                       num_tokens=vision.num_tokens) if spec.point_query is not None else None)

    # -- helpers ------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.language.parameters()).device

    def loss_names(self) -> list[str]:
        """Every loss this policy can compute: its heads, ``text`` when the recipe has text targets and
        ``point`` with ``model.point_query``."""
        return (list(self.heads) + ([TEXT_LOSS] if self.spec.text_loss else [])
                + ([POINT_LOSS] if self.point_query is not None else []))

    def prefix_segments(self, observation: Observation, *, image_tokens: list[Tensor] | None = None) -> list[Segment]:
        """Image segments (one per camera, recipe order) and the prompt segment, all on expert 0.
        The prompt segment is as long as the batch's longest prompt (at most ``max_token_len``).
        ``image_tokens`` (one ``[B, N, D]`` per camera) reuses vision tokens already computed for
        these images."""
        obs = observation
        b = obs.batch_size
        missing = [c for c in self.spec.cameras if c not in obs.images]
        if missing:
            raise PolicyInputError(f"observation lacks camera(s) {missing}; the recipe's model.cameras are "
                                   f"{self.spec.cameras}, the observation has {sorted(obs.images)}")
        device = self.device
        if image_tokens is None:
            pixels = torch.cat([self.vision.preprocess(obs.images[c].to(device)) for c in self.spec.cameras])
            tokens = self.vision(pixels).split(b)
        else:
            tokens = tuple(image_tokens)
        segs = []
        for cam, tok in zip(self.spec.cameras, tokens):
            mask = obs.image_masks.get(cam)
            valid = (mask.to(device=device, dtype=torch.bool) if mask is not None
                     else torch.ones(b, dtype=torch.bool, device=device))
            segs.append(Segment(f"image/{cam}", tok, valid[:, None].expand(b, tok.shape[1]), expert=0,
                                attention="prefix"))
        prompts = self.state_encoder.prompt(tasks=list(obs.prompt), state=obs.state.to(device),
                                            state_mask=obs.state_mask.to(device))
        ids = self.text_tokenizer.encode(prompts, add_bos=True)
        limit = self.spec.max_token_len
        too_long = [(i, len(x)) for i, x in enumerate(ids) if len(x) > limit]
        if too_long:
            i, n = too_long[0]
            raise PolicyInputError(f"prompt of sample {i} is {n} tokens, more than model.max_token_len={limit}: "
                                   f"{prompts[i]!r}")
        # padded to the batch's longest prompt, not to the limit: padding is masked and takes no RoPE
        # position, so the outputs are the same, and the prefix is shorter (27 instead of 32 tokens
        # in the default's post-training batches, 18 in its pointing batches)
        tok_ids, valid = _pad(ids, max(map(len, ids)), self.text_tokenizer.pad_id, device)
        segs.append(Segment("prompt", self.language.embed(tok_ids), valid, expert=0, attention="prefix"))
        return segs

    def target_text_segment(self, batch: Batch) -> tuple[Segment, Tensor, Tensor] | None:
        """(``text`` segment ``[BOS, t...]``, labels ``[t..., EOS]``, label mask) or None without targets."""
        return self.text_segment(batch.target_text)

    def text_segment(self, targets: list[str | None], *, name: str = "text") -> tuple[Segment, Tensor, Tensor] | None:
        """:meth:`target_text_segment` for a list of texts; the segment is called ``name``."""
        if not any(t is not None for t in targets):
            return None
        tok = self.text_tokenizer
        encoded = tok.encode([t if t is not None else "" for t in targets])
        limit = self.spec.max_target_tokens
        for i, (t, ids) in enumerate(zip(targets, encoded)):
            if t is not None and len(ids) > limit:
                raise PolicyInputError(f"target text of sample {i} is {len(ids)} tokens, more than "
                                       f"model.max_target_tokens={limit}: {t!r}")
        length = 1 + max(len(ids) for t, ids in zip(targets, encoded) if t is not None)
        b, device = len(targets), self.device
        # built in numpy (a few microseconds per row) and handed to torch once
        inp = np.full((b, length), tok.bos_id, dtype=np.int64)
        labels = np.full((b, length), tok.eos_id, dtype=np.int64)
        valid = np.zeros((b, length), dtype=bool)
        for i, (t, ids) in enumerate(zip(targets, encoded)):
            if t is None:
                continue
            inp[i, 1:1 + len(ids)] = ids
            labels[i, :len(ids)] = ids
            valid[i, :len(ids) + 1] = True
        inp, labels, valid = (torch.from_numpy(a).to(device) for a in (inp, labels, valid))
        seg = Segment(name, self.language.embed(inp), valid, expert=0, attention="causal")
        return seg, labels, valid

    # -- training -------------------------------------------------------------------------------------
    def compute_loss(self, batch: Batch, *, losses: Collection[str] | None = None) -> dict[str, Tensor]:
        """Scalar losses keyed by head name and ``text``; ``losses`` restricts what is computed."""
        available = self.loss_names()
        wanted = list(available) if losses is None else list(losses)
        unknown = [n for n in wanted if n not in available]
        if unknown:
            raise PolicyInputError(f"unknown loss(es) {unknown}; this policy computes {available}")
        if not wanted:
            raise PolicyInputError(f"no loss requested; this policy computes {available}")
        batch = batch.to(self.device)
        segments = self.prefix_segments(batch.observation)
        if self.point_query is not None:
            segments.append(self.point_query.segment(batch.batch_size, self.device))
        text = self.target_text_segment(batch) if self.spec.text_loss else None
        if text is not None:
            segments.append(text[0])
        inputs = TrainingInputs(batch=batch, embed_tokens=self.language.embed,
                                state_tokens=self.state_encoder.tokens(batch.observation.state.to(self.device)),
                                start_token=self.text_tokenizer.bos_id, eos_token=self.text_tokenizer.eos_id)
        wanted_heads = [name for name in self.heads if name in wanted]
        repeated = [name for name in wanted_heads if self.heads[name].samples_per_observation > 1]
        passes = {name: self.heads[name].prepare(inputs) for name in wanted_heads if name not in repeated}
        order = sorted(passes, key=lambda n: min((s.expert for s in passes[n].segments), default=0))
        conds: dict[int, Tensor] = {}
        for name in order:
            segments.extend(passes[name].segments)
            conds.update(passes[name].conds)
        result = self.runner.run(segments, conds=conds)
        out: dict[str, Tensor] = {}
        for name in order:
            out[name] = self.heads[name].loss(inputs=inputs, prepared=passes[name], hidden=result.hidden,
                                              logits=self.language.logits)
        for name in repeated:
            out[name] = self._repeated_head_loss(name, inputs, segments, result)
        if TEXT_LOSS in wanted:
            if text is None:  # no sample has a text target: a zero that keeps the graph
                out[TEXT_LOSS] = result.hidden["prompt"].sum() * 0.0
            else:
                scores = self.language.logits(result.hidden["text"])
                ce = self._text_ce(scores.flatten(0, 1), text[1].flatten())
                w = text[2].flatten().float()
                out[TEXT_LOSS] = (ce * w).sum() / w.sum().clamp_min(1.0)
        if POINT_LOSS in wanted:
            out[POINT_LOSS] = self._point_loss(batch, result.hidden)
        return out

    def _point_loss(self, batch: Batch, hidden: dict[str, Tensor]) -> Tensor:
        """Squared error of the point query over the batch's known subtask point entries (NaN: none);
        a zero that keeps the graph when no sample in the batch has a point."""
        assert self.point_query is not None
        pred = self.point_query.scaled(hidden)
        if batch.subtask_point is None:
            return pred.sum() * 0.0
        target = batch.subtask_point.to(pred.device).float()
        if target.shape != pred.shape:
            raise PolicyInputError(f"subtask points are {list(target.shape)}, the point query predicts "
                                   f"{list(pred.shape)} ([object_x, object_y, zone_x, zone_y] per sample)")
        if self._asks:
            # asked in the pointing format only: samples with robot state teach it nothing
            robot = batch.observation.state_mask.to(pred.device).any(-1)
            target = target.masked_fill(robot[:, None], float("nan"))
        return point_mse(pred, target)

    def _text_ce(self, scores: Tensor, labels: Tensor) -> Tensor:
        """Per-token cross-entropy; with ``model.number_smoothing``, number labels get the ordinal soft target."""
        sigma = self.spec.number_smoothing
        if sigma is None:
            return F.cross_entropy(scores, labels, reduction="none")
        ids, values, spaced = self._number_tokens()
        logp = F.log_softmax(scores.float(), dim=-1)
        hard = -logp.gather(1, labels[:, None])[:, 0]
        lookup = torch.full((scores.shape[-1],), -1, dtype=torch.long, device=scores.device)
        lookup[ids] = torch.arange(len(ids), device=scores.device)
        slot = lookup[labels]
        rows = slot >= 0
        if not bool(rows.any()):
            return hard
        v, form = values.to(scores.device), spaced.to(scores.device)
        target = torch.exp(-((v[None, :] - v[slot[rows]][:, None]) ** 2) / (2.0 * sigma ** 2))
        target = target * (form[None, :] == form[slot[rows]][:, None])  # "Ġ3" spreads over "Ġ2", "Ġ4", not "3"
        target = target / target.sum(-1, keepdim=True)
        soft = -(target * logp[rows][:, ids.to(scores.device)]).sum(-1)
        return hard.masked_scatter(rows, soft)

    def _number_tokens(self) -> tuple[Tensor, Tensor, Tensor]:
        """Ids of the text tokenizer's whole-number tokens, their values and whether they carry the
        leading-space marker (cached)."""
        if getattr(self, "_numbers", None) is None:
            tok = self.text_tokenizer
            found = []
            for i in range(tok.vocab_size):
                raw = str(tok.id_to_token(i) or "")
                piece = raw.lstrip("Ġ▁ ")
                if piece.isascii() and piece.isdigit() and len(piece) <= 3:
                    found.append((i, int(piece), len(piece) != len(raw)))
            if not found:
                raise PolicyInputError("model.number_smoothing is set but the text tokenizer has no number tokens")
            self._numbers = (torch.tensor([i for i, _, _ in found]), torch.tensor([float(v) for _, v, _ in found]),
                             torch.tensor([spaced for _, _, spaced in found]))
        return self._numbers

    def _repeated_head_loss(self, name: str, inputs: TrainingInputs, segments: list[Segment],
                            result: RunResult) -> Tensor:
        """Loss of a head with ``samples_per_observation = k > 1``: its segments run over the joint
        pass's keys and values (gradients flow through them), for the samples that have actions, each
        repeated k times. Cached tokens the head's segments may not attend are masked out, so
        attention is the same as in the joint pass."""
        head = self.heads[name]
        batch = inputs.batch
        rows = torch.nonzero(batch.has_actions.to(self.device)).flatten()
        if rows.numel() == 0:  # no sample has actions: a zero that keeps the graph
            return result.hidden["prompt"].sum() * 0.0
        index = rows.repeat_interleave(head.samples_per_observation)
        state_tokens = inputs.state_tokens[index] if inputs.state_tokens is not None else None
        sub = replace(inputs, batch=batch.take(index), state_tokens=state_tokens)
        prepared = head.prepare(sub)
        visible = _visible_to(segments, prepared.segments, head=name).to(self.device)
        cache = result.context()
        if not isinstance(cache, KVCache):  # a context-free run always yields a cache
            raise TypeError(f"expected a KV cache from the joint pass, got {type(cache).__name__}")
        cache = KVCache(keys=[k[index] for k in cache.keys], values=[v[index] for v in cache.values],
                        valid=cache.valid[index] & visible[None, :], next_position=cache.next_position[index])
        run = self.runner.run(prepared.segments, context=cache, conds=prepared.conds)
        return head.loss(inputs=sub, prepared=prepared, hidden=run.hidden, logits=self.language.logits)

    def trainable_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part: ``vision``, ``language`` (expert 0 + embedding), ``expert`` (experts >= 1),
        ``heads`` (heads, the state encoder and the point query). Every parameter is in exactly one group."""
        experts = [p for i in range(1, len(self.language.expert_widths)) for p in self.language.expert_parameters(i)]
        groups = {
            "vision": list(self.vision.parameters()),
            "language": self.language.expert_parameters(0),
            "expert": experts,
            "heads": list(self.heads.parameters()) + list(self.state_encoder.parameters())
            + (list(self.point_query.parameters()) if self.point_query is not None else []),
        }
        return {k: v for k, v in groups.items() if v}

    def stats(self) -> dict[str, int]:
        """Counters from the components (clipped state values, skipped FAST chunks, ...)."""
        out = dict(self.state_encoder.stats())
        for head in self.heads.values():
            out.update(head.stats())
        return out

    # -- inference ------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_actions(self, observation: Observation, *, noise: Tensor | None = None,
                       num_steps: int | None = None, subtask: list[str] | None = None) -> ActionChunk:
        """Actions ``[B, H, A]`` (normalised units), prefix computed once into a KV cache.

        ``subtask`` (one text per sample) replaces the predicted subtask: the actions are conditioned on
        it exactly as in training (teacher forcing), e.g. a human's or the env's label (π0.5's
        evaluation with expert high-level commands). Needs ``inference.predict_subtask``.
        """
        prefix = self.prefix_segments(observation.to(self.device))
        if self.point_query is not None:  # also when asking: it holds a position, as in training
            prefix.append(self.point_query.segment(observation.batch_size, self.device))
        result = self.runner.run(prefix)
        return self._act(observation, result.context(), noise=noise, num_steps=num_steps, subtask=subtask,
                         points=None if self._asks else self._points(result), image_tokens=_image_tokens(prefix))

    @torch.no_grad()
    def sample_actions_uncached(self, observation: Observation, *, noise: Tensor | None = None,
                                num_steps: int | None = None) -> ActionChunk:
        """Reference path: the same computation, but the prefix is recomputed at every step."""
        prefix = self.prefix_segments(observation.to(self.device))
        points = None
        if self.point_query is not None:
            prefix.append(self.point_query.segment(observation.batch_size, self.device))
            points = None if self._asks else self._points(self.runner.run(prefix))
        return self._act(observation, prefix, noise=noise, num_steps=num_steps, points=points,
                         image_tokens=_image_tokens(prefix))

    @property
    def _asks(self) -> bool:
        """``model.point_query.ask``: points come from pointing questions about the predicted subtask."""
        return self.spec.point_query is not None and self.spec.point_query.ask is not None

    def ask_points(self, observation: Observation, subtask: list[str], *,
                   image_tokens: list[Tensor] | None = None) -> Tensor:
        """Point by asking (``model.point_query.ask``): for each grid point a subtask writes, the name
        it refers to (found in the subtask, else in the task prompt) becomes a pointing question,
        asked over the same images without robot state, as the query was trained. ``image_tokens``
        (per camera, for the whole batch) reuses the robot prefix's vision tokens. Returns table
        coordinates ``[B, 4]``, NaN where nothing was asked."""
        query = self.spec.point_query
        if self.point_query is None or query is None or query.ask is None:
            raise PolicyInputError("ask_points needs model.point_query.ask")
        rows, questions, slots = [], [], []
        for i, (text, task) in enumerate(zip(subtask, observation.prompt)):
            for slot in sorted(point_slots(text)):
                question = query.ask.question(slot, text, task)
                if question is not None:
                    rows.append(i)
                    questions.append(question)
                    slots.append(slot)
        points = torch.full((observation.batch_size, POINT_DIM), float("nan"))
        if not rows:
            return points
        index = torch.tensor(rows)
        obs = observation.take(index)
        obs = replace(obs, prompt=questions, state=torch.zeros_like(obs.state),
                      state_mask=torch.zeros_like(obs.state_mask))
        tokens = None if image_tokens is None else [t[index.to(t.device)] for t in image_tokens]
        segments = self.prefix_segments(obs.to(self.device), image_tokens=tokens)
        answers = self._points(self.runner.run([*segments, self.point_query.segment(len(rows), self.device)]))
        assert answers is not None
        for k, (i, slot) in enumerate(zip(rows, slots)):
            points[i, SLOTS[slot]] = answers[k, SLOTS[slot]].cpu()
        return points

    def _points(self, result: RunResult) -> Tensor | None:
        """The point query's prediction in table coordinates ``[B, dim]``, or None without a query."""
        if self.point_query is None:
            return None
        return to_table(self.point_query.scaled(result.hidden))

    def _act(self, observation: Observation, context: Context, *, noise: Tensor | None,
             num_steps: int | None, subtask: list[str] | None = None, points: Tensor | None = None,
             image_tokens: list[Tensor] | None = None) -> ActionChunk:
        inference = self.spec.inference
        b = observation.batch_size
        tok = self.text_tokenizer
        if subtask is not None:
            if not inference.predict_subtask:
                raise PolicyInputError("a subtask was given, but this policy's actions do not condition on one "
                                       "(model.inference.predict_subtask is false)")
            if len(subtask) != b:
                raise PolicyInputError(f"{len(subtask)} subtask texts for a batch of {b} observations")
            text = self.text_segment(list(subtask), name="subtask")
            if text is None:
                raise PolicyInputError("no subtask text given")
            context = self.runner.run([text[0]], context=context).context()
        elif inference.predict_subtask:
            allowed = torch.zeros(self.language.vocab_size, dtype=torch.bool, device=self.device)
            allowed[:tok.vocab_size] = True
            for special in (tok.bos_id, tok.pad_id):
                allowed[special] = False
            decoded = greedy_decode(runner=self.runner, context=context, embed_tokens=self.language.embed,
                                    logits=self.language.logits, start_token=tok.bos_id, eos_token=tok.eos_id,
                                    allowed=allowed, max_tokens=inference.max_subtask_tokens, name="subtask",
                                    batch_size=b)
            subtask = tok.decode(decoded.ids)
            if self._asks:
                points = self.ask_points(observation, subtask, image_tokens=image_tokens)
            query = self.spec.point_query
            filled = ([fill_points(t, p, query.bins) for t, p in zip(subtask, points.tolist())]
                      if points is not None and query is not None and query.fill_subtask else subtask)
            if filled != subtask:  # the query's points replace the decoded ones; the expert reads these
                subtask = filled
                text = self.text_segment(list(subtask), name="subtask")
                assert text is not None
                context = self.runner.run([text[0]], context=context).context()
            else:
                context = decoded.context
        head = self.heads[inference.actions_from]
        if head.reads_points and points is None and self._asks and subtask is not None:
            points = self.ask_points(observation, subtask, image_tokens=image_tokens)  # a given subtask's points
        state = observation.state.to(self.device)
        inputs = InferenceInputs(runner=self.runner, context=context, state_tokens=self.state_encoder.tokens(state),
                                 batch_size=b, start_token=tok.bos_id, eos_token=tok.eos_id,
                                 embed_tokens=self.language.embed, logits=self.language.logits,
                                 points=points,
                                 noise_scale=inference.noise_scale)
        chunk = head.sample(inputs, noise=noise, num_steps=num_steps or inference.num_steps)
        chunk.subtask = subtask
        chunk.points = points
        return chunk


def _image_tokens(prefix: list[Segment]) -> list[Tensor]:
    """The vision tokens of a prefix's image segments, camera order (see ``prefix_segments``)."""
    return [seg.embeds for seg in prefix if seg.name.startswith("image/")]


def _visible_to(keys: list[Segment], queries: list[Segment], *, head: str) -> Tensor:
    """bool ``[S]`` over the concatenated ``keys``: False where a key segment hides from the query
    segments (:func:`~vlakit.nn.segments.hides`). All query segments must agree."""
    parts = []
    for key in keys:
        verdicts = {hides(key, q) for q in queries}
        if len(verdicts) > 1:
            raise PolicyInputError(f"head {head!r}: segment {key.name!r} is hidden from some of the head's segments "
                                   "but not others, which a repeated pass over a shared cache cannot express; "
                                   "draw once per sample instead (flow_matching: noise_samples: 1)")
        parts.append(torch.full((key.length,), not verdicts.pop(), dtype=torch.bool))
    return torch.cat(parts)


def _pad(ids: list[list[int]], length: int, pad_id: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Right-pad id lists to ``length``: (long ``[B, length]``, bool valid ``[B, length]``)."""
    out = np.full((len(ids), length), pad_id, dtype=np.int64)
    valid = np.zeros((len(ids), length), dtype=bool)
    for i, x in enumerate(ids):
        out[i, :len(x)] = x
        valid[i, :len(x)] = True
    return torch.from_numpy(out).to(device), torch.from_numpy(valid).to(device)
