"""Deterministic action-chunk generators shared by the tokenizer tests."""

from __future__ import annotations

import numpy as np


def smooth_chunks(n: int, *, horizon: int = 50, action_dim: int = 7, seed: int = 0) -> np.ndarray:
    """float32 ``[n, H, A]`` demonstration-like chunks in about [-1, 1]: a slow sinusoid plus a
    linear drift per dim, and a gripper-like last dim that ramps between -1 and 1."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, horizon)[None, :, None]
    freq = rng.uniform(0.2, 1.5, (n, 1, action_dim))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, action_dim))
    amp = rng.uniform(0.1, 0.6, (n, 1, action_dim))
    drift = rng.uniform(-0.3, 0.3, (n, 1, action_dim))
    x = amp * np.sin(2 * np.pi * freq * t + phase) + drift * t
    centre = rng.uniform(0.2, 0.8, (n, 1))
    x[:, :, -1] = np.tanh((t[:, :, 0] - centre) * 12.0) * rng.choice([-1.0, 1.0], (n, 1))
    return x.astype(np.float32)


def tabletop_demo_chunks(*, embodiment: str, episodes: int, horizon: int = 50,
                         first_seed: int = 1_000_000) -> np.ndarray:
    """float32 ``[N, H, A]`` chunks of scripted-expert episodes of the embedded world (all task
    families), one chunk per start frame, the last action repeated past the episode end."""
    from vlakit.components.action_tokenizers.dataset_chunks import _chunk_index
    from vlakit.envs.tabletop import FAMILIES, TabletopConfig, TabletopEnv

    env = TabletopEnv(TabletopConfig(image_size=16, embodiment=embodiment, families=tuple(FAMILIES)))
    eps = []
    for seed in range(first_seed, first_seed + episodes):
        env.reset(seed=seed)
        acts = []
        for _ in range(env.max_episode_steps):
            a = env.expert_action()
            acts.append(a)
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                break
        eps.append(np.asarray(acts, dtype=np.float32))
    x = np.concatenate(eps)
    ep = np.repeat(np.arange(len(eps)), [len(e) for e in eps])
    return x[_chunk_index(ep, horizon=horizon, stride=1)]
