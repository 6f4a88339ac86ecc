"""One closed-loop episode: observe -> actor -> execute the chunk open-loop for ``replan_every`` steps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vlakit.errors import VlakitError
from vlakit.evaluation.actors import Actor
from vlakit.evaluation.metrics import EpisodeResult
from vlakit.interfaces.env import Env


@dataclass
class Frame:
    """A recorded frame for the episode strip."""

    image: np.ndarray  #: uint8 [h, w, 3]
    step: int
    subtask: str | None


@dataclass
class Recording:
    prompt: str
    split: str = ""
    frames: list[Frame] = field(default_factory=list)
    success: bool = False


def run_episode(env: Env, actor: Actor, *, seed: int, split: str, replan_every: int,
                max_steps: int | None = None, record: bool = False, camera: str | None = None,
                ) -> tuple[EpisodeResult, Recording | None]:
    """Roll out one episode of ``env`` (reset with ``seed``) driven by ``actor``.

    Each actor call returns a chunk ``[h, A]``; its first ``min(h, replan_every)`` actions run
    open-loop, then the actor is asked again. The episode ends when the env terminates or
    truncates, after ``max_steps`` (default ``env.max_episode_steps``), or -- counted as a failure
    with the reason recorded -- when the actor returns an invalid chunk.
    """
    obs = env.reset(seed=seed)
    limit = max_steps or env.max_episode_steps  # after reset: the limit may depend on the task
    actor.reset(env, seed=seed)
    family = env.task_family()
    cam = camera or env.cameras[0]
    rec = Recording(prompt=obs.prompt, split=split) if record else None
    if rec is not None:
        rec.frames.append(Frame(obs.images[cam].copy(), 0, None))
    steps, chunks, success, failure = 0, 0, False, None
    latencies: list[float] = []
    done = False
    while not done and steps < limit:
        start = time.perf_counter()
        decision = actor.act(obs)
        latencies.append(time.perf_counter() - start)
        chunks += 1
        if not decision.valid:
            failure = f"invalid action chunk at step {steps}: {decision.error}"
            break
        actions = np.asarray(decision.actions)
        if actions.ndim != 2 or actions.shape[1] != env.action_dim or len(actions) == 0:
            raise VlakitError(f"{actor.name} returned actions of shape {actions.shape}; the env expects "
                              f"[h, {env.action_dim}]")
        for action in actions[:replan_every]:
            obs, _reward, terminated, truncated, info = env.step(action)
            steps += 1
            if "success" not in info:
                raise VlakitError(f"{type(env).__name__}.step returned info without 'success' (keys: "
                                  f"{sorted(info)}); the Env interface requires it")
            success = bool(info["success"])
            if rec is not None:
                rec.frames.append(Frame(obs.images[cam].copy(), steps, decision.subtask))
            if terminated or truncated or success or steps >= limit:
                done = True
                break
    if rec is not None:
        rec.success = success
    result = EpisodeResult(split=split, family=family, seed=seed, success=success, length=steps, prompt=obs.prompt,
                           chunks=chunks, latency_s=latencies, failure=failure)
    return result, rec
