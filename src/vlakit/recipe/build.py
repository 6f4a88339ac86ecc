"""The one composition root: recipe -> :class:`~vlakit.policy.VLAPolicy`.

Only this module wires components together. Cross-component checks run before any weight is
allocated and name both parts of a mismatch: expert geometry (depth, heads, kv heads, head_dim),
widths, vocabulary ranges (text ids and action codes must fit the LM vocabulary without overlap),
a state encoder that needs an action expert, and the inference head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from vlakit.errors import VlakitError
from vlakit.interfaces.action_head import HeadContext
from vlakit.interfaces.language import ExpertRequest

if TYPE_CHECKING:
    from rich.table import Table

    from vlakit.policy import VLAPolicy
    from vlakit.recipe.model_spec import ModelSpec
    from vlakit.recipe.schema import Recipe


class BuildError(VlakitError):
    """Components of a recipe do not fit together."""


@dataclass(frozen=True)
class _Plan:
    """Everything decided before weights exist."""

    vocab_size: int
    requests: list[ExpertRequest]
    head_experts: dict[str, int]  # head name -> expert index


def _model_spec(recipe: Recipe | ModelSpec) -> ModelSpec:
    return getattr(recipe, "model", recipe)  # type: ignore[return-value]


def build_tokenizers(recipe: Recipe | ModelSpec) -> tuple[Any, Any | None]:
    """(text tokenizer, action tokenizer or None) built from the recipe's Configs."""
    spec = _model_spec(recipe)
    text = spec.text_tokenizer.build()
    action = spec.action_tokenizer.build() if spec.action_tokenizer is not None else None
    return text, action


def _plan(spec: ModelSpec, text_tokenizer: Any, action_tokenizer: Any | None) -> _Plan:
    lang = spec.language
    lang_name = f"model.language ({lang.type} {getattr(lang, 'variant', '')})".replace(" )", ")")
    base = lang.geometry()
    requests: list[ExpertRequest] = []
    head_experts: dict[str, int] = {}
    for name, head in spec.heads.items():
        owner = f"model.heads.{name}"
        ask = getattr(head, "expert_request", None)
        req = ask(owner) if ask is not None else None
        if req is None:
            head_experts[name] = 0
            continue
        try:
            geo = lang.geometry(req.variant)
        except ValueError as exc:
            raise BuildError(f"{owner}.expert {req.variant!r} is not a variant {lang_name} knows: {exc}") from None
        if geo.shared() != base.shared():
            diffs = ", ".join(f"{k} {geo.shared()[k]} vs {v}" for k, v in base.shared().items()
                              if geo.shared()[k] != v)
            raise BuildError(f"{owner}.expert {req.variant!r} does not fit {lang_name}: experts of one backbone "
                             f"must agree in depth, num_heads, num_kv_heads and head_dim ({diffs})")
        requests.append(req)
        head_experts[name] = len(requests)

    text_vocab = text_tokenizer.vocab_size
    action_vocab = action_tokenizer.vocab_size if action_tokenizer is not None else None
    vocab = lang.default_vocab_size()
    if vocab is None:
        tails = [h.reserved_tail for h in spec.heads.values() if hasattr(h, "reserved_tail")]
        vocab = text_vocab + ((action_vocab or 0) + max(tails) if tails else 0)
    text_name = f"model.text_tokenizer ({spec.text_tokenizer.type}, {text_vocab} ids)"
    if text_vocab > vocab:
        raise BuildError(f"{text_name} does not fit {lang_name} with vocab_size {vocab}")
    for special in ("bos_id", "eos_id", "pad_id"):
        value = getattr(text_tokenizer, special)
        if not 0 <= value < text_vocab:
            raise BuildError(f"{text_name}: {special} {value} is outside its vocabulary")
    for name, head in spec.heads.items():
        check = getattr(head, "check_vocab", None)
        problem = check(vocab_size=vocab, text_vocab_size=text_vocab, action_vocab_size=action_vocab) \
            if check is not None else None
        if problem:
            act = (f"model.action_tokenizer ({spec.action_tokenizer.type}, {action_vocab} codes)"
                   if spec.action_tokenizer is not None else "model.action_tokenizer")
            raise BuildError(f"model.heads.{name} with {act} and {lang_name} (vocab {vocab}): {problem}")

    if getattr(spec.state, "emits_tokens", False) and not requests:
        raise BuildError(f"model.state ({spec.state.type}) emits action-expert tokens, but no head in model.heads "
                         f"({', '.join(spec.heads)}) has an action expert")
    if spec.inference.actions_from not in spec.heads:
        raise BuildError(f"model.inference.actions_from is {spec.inference.actions_from!r} but model.heads has "
                         f"only {', '.join(spec.heads)}")
    return _Plan(vocab_size=vocab, requests=requests, head_experts=head_experts)


def build_policy(recipe: Recipe | ModelSpec, *, device: str | torch.device = "cpu", text_tokenizer: Any = None,
                 action_tokenizer: Any = None) -> VLAPolicy:
    """Build the policy a recipe describes (fresh weights).

    Args:
        recipe: a validated recipe (or its ``model`` section).
        device: where to allocate; ``"meta"`` builds shapes only (parameter counts).
        text_tokenizer, action_tokenizer: use these instead of building them from the recipe
            (e.g. a fitted FAST tokenizer loaded from a policy folder).
    """
    from vlakit.policy import VLAPolicy

    spec = _model_spec(recipe)
    if text_tokenizer is None:
        text_tokenizer = spec.text_tokenizer.build()
    if action_tokenizer is None and spec.action_tokenizer is not None:
        action_tokenizer = spec.action_tokenizer.build()
    plan = _plan(spec, text_tokenizer, action_tokenizer)

    with torch.device(device):
        language = spec.language.build(vocab_size=plan.vocab_size, experts=plan.requests)
        widths = list(language.expert_widths)
        vision = spec.vision.build(out_width=widths[0])
        if vision.out_width != widths[0]:
            raise BuildError(f"model.vision ({spec.vision.type}) produces width {vision.out_width}, "
                             f"model.language expects {widths[0]}")
        expert_width = widths[1] if len(widths) > 1 else None
        state = spec.state.build(expert_width=expert_width, state_dim=spec.max_action_dim)
        heads = {}
        for name, head_cfg in spec.heads.items():
            index = plan.head_experts[name]
            ctx = HeadContext(horizon=spec.horizon, action_dim=spec.max_action_dim, vocab_size=plan.vocab_size,
                              backbone_width=widths[0], expert_index=index, expert_width=widths[index],
                              text_tokenizer=text_tokenizer, action_tokenizer=action_tokenizer)
            heads[name] = head_cfg.build(context=ctx)
    return VLAPolicy(spec=spec, vision=vision, language=language, state=state, heads=heads,
                     text_tokenizer=text_tokenizer, action_tokenizer=action_tokenizer)


def parameter_counts(recipe: Recipe | ModelSpec) -> dict[str, int]:
    """Exact parameter counts per component, built on the meta device (no memory allocated).

    Keys: ``vision``, ``language`` (expert 0 without the embedding), ``embedding``,
    ``expert:<head>`` (one per head with an action expert), ``head:<head>``, ``state``, ``total``.
    """
    policy = build_policy(recipe, device="meta")
    spec = _model_spec(recipe)
    lang = policy.language
    embedding = {id(p) for p in lang.embedding_parameters()}

    def count(params: Any) -> int:
        return sum(p.numel() for p in params)

    counts = {"vision": count(policy.vision.parameters()),
              "language": count(p for p in lang.expert_parameters(0) if id(p) not in embedding),
              "embedding": count(p for p in lang.expert_parameters(0) if id(p) in embedding)}
    for name, index in _plan(spec, policy.text_tokenizer, policy.action_tokenizer).head_experts.items():
        if index >= 1:
            counts[f"expert:{name}"] = count(lang.expert_parameters(index))
    for name, head in policy.heads.items():
        counts[f"head:{name}"] = count(head.parameters())
    counts["state"] = count(policy.state_encoder.parameters())
    counts["total"] = count(policy.parameters())
    return counts


def parameter_table(recipe: Recipe) -> Table:
    """A rich table of :func:`parameter_counts` (``vlakit recipes show RECIPE --params``)."""
    from rich.table import Table

    spec = _model_spec(recipe)
    counts = parameter_counts(recipe)
    labels = {"vision": f"vision ({spec.vision.type} {getattr(spec.vision, 'variant', '')})".strip(),
              "language": f"language ({spec.language.type} {getattr(spec.language, 'variant', '')}, "
                          f"without embedding)",
              "embedding": "token embedding (tied LM head)", "state": f"state ({spec.state.type})",
              "total": "total"}
    table = Table(title=f"parameters of {getattr(recipe, 'name', 'model')}")
    table.add_column("component")
    table.add_column("parameters", justify="right")
    table.add_column("share", justify="right")
    total = counts["total"]
    for key, n in counts.items():
        label = labels.get(key)
        if label is None:
            kind, _, name = key.partition(":")
            head = spec.heads[name]
            label = (f"action expert of heads.{name} ({getattr(head, 'expert', '')})" if kind == "expert"
                     else f"heads.{name} ({head.type})")
        style = "bold" if key == "total" else None
        table.add_row(label, f"{n:,}", f"{100 * n / total:.2f} %" if total else "-", style=style)
    return table
