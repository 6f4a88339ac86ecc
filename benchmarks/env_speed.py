"""Tabletop world speed: env steps per second, rendering both cameras, on one core.

    .venv/bin/python benchmarks/env_speed.py [--size 64] [--steps 20000] [--embodiment gripper]

Prints steps/s for random actions (physics + rendering only) and for the scripted expert
(includes planning), each including episode resets. Target: >= 1,000 steps/s at 64x64.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from vlakit.envs.tabletop import FAMILIES, TabletopConfig, TabletopEnv


def run(env: TabletopEnv, steps: int, *, expert: bool) -> float:
    rng = np.random.default_rng(0)
    episode = 0
    env.reset(seed=episode)
    start = time.perf_counter()
    for _ in range(steps):
        action = env.expert_action() if expert else rng.uniform(-1, 1, env.action_dim)
        _obs, _r, terminated, truncated, _info = env.step(action)
        if terminated or truncated:
            episode += 1
            env.reset(seed=episode)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--embodiment", choices=["gripper", "arm", "both"], default="both")
    args = parser.parse_args()
    embodiments = ["gripper", "arm"] if args.embodiment == "both" else [args.embodiment]
    print(f"tabletop env speed, {args.size}x{args.size}, cameras overhead+wrist, {args.steps} steps, 1 thread")
    for emb in embodiments:
        env = TabletopEnv(TabletopConfig(embodiment=emb, image_size=args.size, families=FAMILIES))
        for expert in (False, True):
            sps = run(env, args.steps, expert=expert)
            label = "expert" if expert else "random"
            print(f"  {emb:8s} {label:7s} {sps:8.0f} steps/s  {'OK' if sps >= 1000 else 'BELOW 1000'}")


if __name__ == "__main__":
    main()
