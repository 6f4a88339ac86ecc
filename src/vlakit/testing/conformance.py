"""Per-kind conformance checks. Each check raises :class:`ConformanceError` with a precise reason."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vlakit.config import ComponentConfig
from vlakit.registry import REGISTRIES, registry


class ConformanceError(AssertionError):
    """A component does not behave as its interface promises."""


def _fail(kind: str, key: str, message: str) -> ConformanceError:
    return ConformanceError(f"{kind}/{key}: {message}")


def example_config(cls: type) -> ComponentConfig:
    """A small config for ``cls``: its ``test_config()`` if defined, else ``cls.Config()``."""
    maker = getattr(cls, "test_config", None)
    return maker() if callable(maker) else cls.Config()


def conformance_cases(kinds: list[str] | None = None) -> list[tuple[str, str]]:
    """(kind, key) for every registered component (built-ins and installed plugins)."""
    out = []
    for kind in kinds or list(REGISTRIES):
        out += [(kind, key) for key in registry(kind).keys()]
    return out


def check_component(kind: str, key: str) -> None:
    """Run the generic checks plus the kind-specific checks for one registered component."""
    reg = registry(kind)
    cls = reg.get(key)
    reg.check_implements(cls)
    cfg = example_config(cls)
    _check_config_roundtrip(kind, key, cfg)
    specific = _CHECKS.get(kind)
    if specific is not None:
        specific(kind, key, cls, cfg)


def _check_config_roundtrip(kind: str, key: str, cfg: ComponentConfig) -> None:
    if cfg.type != key:
        raise _fail(kind, key, f"Config.type is {cfg.type!r}, expected the registry key {key!r}")
    again = type(cfg).model_validate(cfg.model_dump(mode="json"))
    if again != cfg:
        raise _fail(kind, key, "Config does not survive a JSON dump/validate round trip")
    if not type(cfg).model_config.get("frozen"):
        raise _fail(kind, key, "Config must be frozen")
    if type(cfg).model_config.get("extra") != "forbid":
        raise _fail(kind, key, "Config must forbid unknown fields (extra='forbid')")


def _build(kind: str, key: str, cfg: ComponentConfig, **ctx: Any) -> Any:
    try:
        return cfg.build(**ctx)
    except NotImplementedError as exc:
        raise _fail(kind, key, f"Config.build is not implemented: {exc}") from exc


# -- action tokenizers ------------------------------------------------------------------------------
def _check_action_tokenizer(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    tok = _build(kind, key, cfg)
    rng = np.random.default_rng(0)
    horizon, dim = 10, 3
    t = np.linspace(0, 1, horizon)[None, :, None]
    chunks = np.clip(0.6 * np.sin(2 * np.pi * (t + rng.uniform(0, 1, (64, 1, dim)))), -1, 1)
    if not tok.is_fitted:
        tok.fit(chunks)
    codes = tok.encode(chunks[:4])
    if len(codes) != 4:
        raise _fail(kind, key, f"encode of 4 chunks returned {len(codes)} sequences")
    for seq in codes:
        if any((not isinstance(c, (int, np.integer))) or c < 0 or c >= tok.vocab_size for c in seq):
            raise _fail(kind, key, f"encode produced a code outside [0, {tok.vocab_size})")
    result = tok.decode(codes, horizon=horizon, action_dim=dim)
    if result.actions.shape != (4, horizon, dim) or not bool(np.all(result.ok)):
        raise _fail(kind, key, f"decode(encode(x)) failed: shape {result.actions.shape}, ok {result.ok}")
    if np.max(np.abs(result.actions - chunks[:4])) > 0.25:
        raise _fail(kind, key, "decode(encode(x)) is far from x (> 0.25 max abs error)")
    bad = tok.decode([[tok.vocab_size + 5]], horizon=horizon, action_dim=dim)
    if bool(bad.ok[0]) or not np.isnan(bad.actions[0]).all() or not bad.errors[0]:
        raise _fail(kind, key, "an out-of-vocabulary code must give ok=False, NaN actions and an error message")
    with tempfile.TemporaryDirectory() as tmp:
        tok.save(tmp)
        again = cls.load(tmp)
        if again.encode(chunks[:4]) != codes:
            raise _fail(kind, key, "save/load round trip changes the codes")
    try:
        tok.encode(np.full((1, horizon, dim), np.nan))
    except (ValueError, Exception) as exc:
        if isinstance(exc, ConformanceError):
            raise
    else:
        raise _fail(kind, key, "encode accepted NaN actions")


# -- environments ------------------------------------------------------------------------------------
def _check_env(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    env_a, env_b = _build(kind, key, cfg), _build(kind, key, cfg)
    obs_a, obs_b = env_a.reset(seed=3), env_b.reset(seed=3)
    if set(obs_a.images) != set(env_a.cameras):
        raise _fail(kind, key, f"observation cameras {sorted(obs_a.images)} != env.cameras {env_a.cameras}")
    for cam, img in obs_a.images.items():
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
            raise _fail(kind, key, f"camera {cam!r} image must be uint8 [h, w, 3], got {img.dtype} {img.shape}")
        if not np.array_equal(img, obs_b.images[cam]):
            raise _fail(kind, key, "reset(seed) is not deterministic")
    if np.asarray(obs_a.state).shape != (env_a.state_dim,):
        raise _fail(kind, key, f"state shape {np.asarray(obs_a.state).shape} != ({env_a.state_dim},)")
    if not isinstance(obs_a.prompt, str) or not obs_a.prompt:
        raise _fail(kind, key, "observation prompt must be a non-empty string")
    action = np.zeros(env_a.action_dim, dtype=np.float32)
    out = env_a.step(action)
    if len(out) != 5:
        raise _fail(kind, key, "step must return (obs, reward, terminated, truncated, info)")
    _, _, terminated, truncated, info = out
    if "success" not in info:
        raise _fail(kind, key, "step info must contain 'success'")
    if not isinstance(terminated, (bool, np.bool_)) or not isinstance(truncated, (bool, np.bool_)):
        raise _fail(kind, key, "terminated/truncated must be bools")


# -- text tokenizers ---------------------------------------------------------------------------------
def _check_text_tokenizer(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    tok = _build(kind, key, cfg)
    texts = ["pick up the red cube", "Task: put all the blocks in the bin, State: 12 255 0;\nAction: "]
    ids = tok.encode(texts, add_bos=True, add_eos=True)
    for seq in ids:
        if seq[0] != tok.bos_id or seq[-1] != tok.eos_id:
            raise _fail(kind, key, "encode(add_bos, add_eos) must wrap ids in BOS/EOS")
        if any(i < 0 or i >= tok.vocab_size for i in seq):
            raise _fail(kind, key, "encode produced an id outside [0, vocab_size)")
    decoded = tok.decode(ids, skip_special=True)
    if [d.strip() for d in decoded] != [t.strip() for t in texts]:
        raise _fail(kind, key, f"decode(encode(x)) != x: {decoded!r}")
    with tempfile.TemporaryDirectory() as tmp:
        tok.save(tmp)
        if not any(Path(tmp).iterdir()):
            raise _fail(kind, key, "save wrote nothing")


# -- compute backends ---------------------------------------------------------------------------------
def _check_backend(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    available, reason = cls.availability()
    if not isinstance(available, bool) or not isinstance(reason, str):
        raise _fail(kind, key, "availability() must return (bool, str)")
    if not available:
        return  # e.g. cuda on a CPU machine: building must fail with a reason (tested elsewhere)
    backend = _build(kind, key, cfg)
    import torch

    torch.zeros(2, device=backend.device)
    with backend.autocast():
        pass


# -- data sources ------------------------------------------------------------------------------------
def _check_data_source(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = _build(kind, key, cfg, name=key, horizon=4, cache_dir=Path(tmp))
        if not source.is_prepared():
            source.prepare(progress=False)
        source.load()
        if len(source) <= 0:
            raise _fail(kind, key, "a prepared source must have at least one sample")
        sample = source[0]
        for field in ("images", "prompt"):
            if field not in sample:
                raise _fail(kind, key, f"sample is missing {field!r} (has {sorted(sample)})")
        if source.yields_actions:
            actions = np.asarray(sample.get("actions"))
            if actions.ndim != 2 or actions.shape[0] != 4:
                raise _fail(kind, key, f"actions must be [H=4, A], got {actions.shape}")


# -- model parts -------------------------------------------------------------------------------------
def _grads_reach_every_parameter(kind: str, key: str, module: Any, loss: Any) -> None:
    loss.backward()
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    if missing:
        raise _fail(kind, key, f"no gradient reached {len(missing)} parameter(s), e.g. {missing[:3]}")


def _check_vision_encoder(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    import torch

    torch.manual_seed(0)
    enc = _build(kind, key, cfg, out_width=24)
    images = torch.randint(0, 256, (2, 48, 40, 3), dtype=torch.uint8)
    pixels = enc.preprocess(images)
    if not pixels.is_floating_point() or pixels.min() < -1.0 - 1e-6 or pixels.max() > 1.0 + 1e-6:
        raise _fail(kind, key, "preprocess must return float pixels in [-1, 1]")
    out = enc(pixels)
    if tuple(out.shape) != (2, enc.num_tokens, 24) or enc.out_width != 24:
        raise _fail(kind, key, f"forward gave {tuple(out.shape)}, expected (2, num_tokens={enc.num_tokens}, 24)")
    if not torch.isfinite(out).all():
        raise _fail(kind, key, "forward produced non-finite values")
    _grads_reach_every_parameter(kind, key, enc, out.square().mean())


def _check_language_backbone(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    import torch

    torch.manual_seed(0)
    lm = _build(kind, key, cfg, vocab_size=97)
    if lm.vocab_size != 97:
        raise _fail(kind, key, f"vocab_size {lm.vocab_size} != requested 97")
    ids = torch.randint(0, 97, (2, 5))
    x = lm.embed(ids)
    n = ids.shape[1]
    mask = torch.tril(torch.ones(n, n, dtype=torch.bool)).expand(2, n, n)
    pos = torch.arange(n).expand(2, n)
    out = lm([x], attn_mask=mask, positions=pos)
    hidden = out.hidden[0]
    logits = lm.logits(hidden)
    if tuple(logits.shape) != (2, n, 97) or logits.dtype != torch.float32:
        raise _fail(kind, key, f"logits must be float32 [B, N, vocab], got {logits.dtype} {tuple(logits.shape)}")
    # causality: changing the last token must not change earlier outputs
    ids2 = ids.clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % 97
    hidden2 = lm([lm.embed(ids2)], attn_mask=mask, positions=pos).hidden[0]
    if not torch.allclose(hidden[:, :-1], hidden2[:, :-1], atol=1e-5):
        raise _fail(kind, key, "a causal mask did not stop earlier positions from seeing a later token")
    _grads_reach_every_parameter(kind, key, lm, logits.logsumexp(-1).mean())


def _check_time_conditioning(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    import torch

    torch.manual_seed(0)
    tc = _build(kind, key, cfg, width=16)
    tokens, cond = tc(torch.randn(3, 4, 16), torch.rand(3))
    if tuple(tokens.shape) != (3, 4, 16):
        raise _fail(kind, key, f"tokens shape {tuple(tokens.shape)} != (3, 4, 16)")
    if cond is not None and tuple(cond.shape) != (3, 16):
        raise _fail(kind, key, f"condition shape {tuple(cond.shape)} != (3, 16)")


def _check_state_encoder(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    import torch

    enc = _build(kind, key, cfg, expert_width=16, state_dim=6)
    state = torch.tensor([[0.0, 0.5, -0.5, 0.99, 3.0, -3.0]])
    mask = torch.tensor([[True] * 4 + [False] * 2])
    prompts = enc.prompt(tasks=["pick up the red cube"], state=state, state_mask=mask)
    if len(prompts) != 1 or "pick up the red cube" not in prompts[0]:
        raise _fail(kind, key, f"prompt must contain the task, got {prompts!r}")
    tokens = enc.tokens(state)
    if tokens is not None and (tokens.ndim != 3 or tokens.shape[0] != 1 or tokens.shape[-1] != 16):
        raise _fail(kind, key, f"state tokens must be [B, N, expert_width], got {tuple(tokens.shape)}")


def _check_vision_task(kind: str, key: str, cls: type, cfg: ComponentConfig) -> None:
    task = _build(kind, key, cfg)
    targets = task.targets()
    if not targets or len({t.name for t in targets}) != len(targets):
        raise _fail(kind, key, f"targets() must be non-empty with unique names, got {targets!r}")
    for grid, held_out in ((2, False), (3, True)):
        data = task.generate(3, grid=grid, seed=0, held_out=held_out)
        if data.images.dtype != np.uint8 or data.images.ndim != 4 or data.images.shape[0] != 3:
            raise _fail(kind, key, f"images must be uint8 [3, h, w, 3], got {data.images.dtype} {data.images.shape}")
        for t in targets:
            y = data.labels.get(t.name)
            want = (3, grid * grid) if t.kind == "class" else (3, grid * grid, t.size)
            if y is None or tuple(y.shape) != want:
                raise _fail(kind, key, f"labels[{t.name!r}] must be {want}, got {None if y is None else y.shape}")
            if t.kind == "class" and (y.min() < -1 or y.max() >= t.size):
                raise _fail(kind, key, f"labels[{t.name!r}] must lie in [-1, {t.size}), got {y.min()}..{y.max()}")
    again = task.generate(3, grid=3, seed=0, held_out=True)
    if not np.array_equal(again.images, data.images):
        raise _fail(kind, key, "generate() is not deterministic in its seed")


_CHECKS: dict[str, Callable[[str, str, type, ComponentConfig], None]] = {
    "action_tokenizers": _check_action_tokenizer,
    "envs": _check_env,
    "text_tokenizers": _check_text_tokenizer,
    "backends": _check_backend,
    "data_sources": _check_data_source,
    "vision_encoders": _check_vision_encoder,
    "language_backbones": _check_language_backbone,
    "time_conditionings": _check_time_conditioning,
    "state_encoders": _check_state_encoder,
    "vision_tasks": _check_vision_task,
}


def register_check(kind: str, check: Callable[[str, str, type, ComponentConfig], None]) -> None:
    """Add or replace the kind-specific check (used by vlakit's model kinds)."""
    _CHECKS[kind] = check
