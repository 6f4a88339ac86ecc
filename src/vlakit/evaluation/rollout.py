"""One closed-loop episode: observe -> actor -> execute the chunk open-loop for ``replan_every`` steps."""

from __future__ import annotations

import time
from collections.abc import Callable
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
    return run_episodes([env], actor, seeds=[seed], split=split, replan_every=replan_every, max_steps=max_steps,
                        record=[record], camera=camera)[0]


def run_episodes(envs: list[Env], actor: Actor, *, seeds: list[int], split: str, replan_every: int,
                 max_steps: int | None = None, record: list[bool] | None = None, camera: str | None = None,
                 visit: Callable[[int, Env, int], None] | None = None,
                 ) -> list[tuple[EpisodeResult, Recording | None]]:
    """:func:`run_episode` for one episode per env, in lockstep: at every replan the actor decides for
    all live episodes at once (``actor.act_batch``), so a policy runs one batched forward pass.

    With more than one env the actor must be ``batchable`` (it keeps no per-episode state).
    ``visit(k, env, steps)`` is called before each decision of episode ``k`` (DAgger uses it to fork
    the states a policy reaches). Latencies are those of the batched calls.
    """
    if len(envs) != len(seeds):
        raise ValueError(f"{len(envs)} envs but {len(seeds)} seeds")
    if len(envs) > 1 and not actor.batchable:
        raise VlakitError(f"actor {actor.name!r} keeps per-episode state; roll its episodes out one at a time")
    record = list(record or [False] * len(envs))
    obs = []
    limits, families, recs = [], [], []
    for env, seed, rec_on in zip(envs, seeds, record):
        ob = env.reset(seed=seed)
        obs.append(ob)
        limits.append(max_steps or env.max_episode_steps)  # after reset: the limit may depend on the task
        actor.reset(env, seed=seed)
        families.append(env.task_family())
        rec = Recording(prompt=ob.prompt, split=split) if rec_on else None
        if rec is not None:
            rec.frames.append(Frame(ob.images[camera or env.cameras[0]].copy(), 0, None))
        recs.append(rec)
    n = len(envs)
    steps, chunks, success = [0] * n, [0] * n, [False] * n
    failure: list[str | None] = [None] * n
    latencies: list[list[float]] = [[] for _ in envs]
    live = [k for k in range(n) if steps[k] < limits[k]]
    while live:
        if visit is not None:
            for k in live:
                visit(k, envs[k], steps[k])
        start = time.perf_counter()
        decisions = actor.act_batch([obs[k] for k in live])
        took = time.perf_counter() - start
        still = []
        for k, decision in zip(live, decisions):
            env, rec = envs[k], recs[k]
            latencies[k].append(took)
            chunks[k] += 1
            if not decision.valid:
                failure[k] = f"invalid action chunk at step {steps[k]}: {decision.error}"
                continue
            actions = np.asarray(decision.actions)
            if actions.ndim != 2 or actions.shape[1] != env.action_dim or len(actions) == 0:
                raise VlakitError(f"{actor.name} returned actions of shape {actions.shape}; the env expects "
                                  f"[h, {env.action_dim}]")
            done = False
            for action in actions[:replan_every]:
                obs[k], _reward, terminated, truncated, info = env.step(action)
                steps[k] += 1
                if "success" not in info:
                    raise VlakitError(f"{type(env).__name__}.step returned info without 'success' (keys: "
                                      f"{sorted(info)}); the Env interface requires it")
                success[k] = bool(info["success"])
                if rec is not None:
                    rec.frames.append(Frame(obs[k].images[camera or env.cameras[0]].copy(), steps[k],
                                            decision.subtask))
                if terminated or truncated or success[k] or steps[k] >= limits[k]:
                    done = True
                    break
            if not done:
                still.append(k)
        live = still
    out = []
    for k in range(n):
        if recs[k] is not None:
            recs[k].success = success[k]
        result = EpisodeResult(split=split, family=families[k], seed=seeds[k], success=success[k], length=steps[k],
                               prompt=obs[k].prompt, chunks=chunks[k], latency_s=latencies[k], failure=failure[k])
        out.append((result, recs[k]))
    return out
