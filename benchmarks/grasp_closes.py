"""Grasp closes: where a trained policy closes its jaws on pick-and-place, and what it says after a miss.

    .venv/bin/python benchmarks/grasp_closes.py runs/pi05_tabletop/policy [--episodes 20]
        [--split unseen] [--subtasks predicted|oracle] [--replan-every 5] [--seed 0]

Runs ``--episodes`` closed-loop pick-and-place episodes of the policy's tabletop env (seeds ``--seed``
onwards, all in lockstep as ``vlakit eval`` runs them) and records every step at which the open jaws
close. Printed:

* the episodes' success;
* **closes by distance**: how far the gripper was from the object to pick at each close, in bands
  around the world's grasp radius (``GRASP_RADIUS``, 0.045), and how many of those closes grasped
  it. The scripted expert closes within 0.012 of the object, so every demonstrated close grasps;
* **after a miss**: at the replans where the jaws are closed and hold nothing while the env's label is
  still "pick up the X", how often the policy's own subtask (``--subtasks predicted``) says
  "place ..." instead, i.e. it acts as if it held the object although the robot state says it does
  not.

``--subtasks oracle`` gives the policy the env's labels, which separates the action expert's
precision from the VLM's subtask. Needs the tabletop world (its scripted expert and world state).
The measurement behind README: Results, item 18.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from vlakit.envs.tabletop.world import GRASP_RADIUS
from vlakit.evaluation.actors import PolicyActor
from vlakit.evaluation.evaluator import make_env
from vlakit.evaluation.rollout import run_episodes
from vlakit.policy_io import load_policy

BANDS = (0.0, GRASP_RADIUS, 0.06, 0.08, 0.12, 0.2, float("inf"))


def words(text: str | None) -> str:
    """A subtask without its grid points ("pick up the red cube at 3 5" -> "pick up the red cube")."""
    return re.split(r" at \d| to \d", text or "")[0].strip()


def watch_closes(env, closes: list[tuple[float, bool]]) -> None:
    """Wrap a tabletop env's ``step`` so that each step that closes open jaws appends
    ``(distance from the gripper to the target object, grasped it)`` to ``closes``. The distance is
    taken after the step's motion, where the jaws closed, to where the object was before the step."""
    step = env.step

    def closing_step(action):
        world, task = env.world, env.task
        was_open, target = not world.closed, np.array(world.positions[task.target])
        out = step(action)
        if was_open and world.closed:
            closes.append((float(np.linalg.norm(target - world.gripper)), world.held == task.target))
        return out

    env.step = closing_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", type=Path, help="policy folder (runs/<recipe>/policy)")
    parser.add_argument("--episodes", type=int, default=20, help="pick-and-place episodes")
    parser.add_argument("--split", default="unseen", help="scene split")
    parser.add_argument("--subtasks", default="predicted", choices=("predicted", "oracle"),
                        help="the policy's own subtasks, or the env's labels")
    parser.add_argument("--replan-every", type=int, default=None, help="default: the recipe's eval.replan_every")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    console = Console(width=None if sys.stdout.isatty() else 200)

    loaded = load_policy(args.policy, backend="cpu")
    recipe = loaded.recipe
    spec = recipe.eval.env
    if spec.type != "tabletop":
        raise SystemExit(f"grasp_closes needs the tabletop world; the policy evaluates on {spec.type!r}")
    replan = args.replan_every or recipe.eval.replan_every
    pick_place = type(spec).model_validate({**spec.model_dump(), "families": ["pick_place"]})
    envs = [make_env(pick_place, split=args.split) for _ in range(args.episodes)]
    closes: list[tuple[float, bool]] = []  # (distance to the object at the close, grasped it)
    for env in envs:
        watch_closes(env, closes)
    actor = PolicyActor(loaded, subtasks=args.subtasks)
    after_miss = {"replans": 0, "place": 0}
    act_batch = actor.act_batch

    def recording_act_batch(observations):
        steps = act_batch(observations)
        for obs, chosen in zip(observations, steps):
            state = dict(zip(envs[0].state_names, np.asarray(obs.state)))
            if state["aperture"] <= 0.5 and state["holding"] < 0.5 and words(obs.info["subtask"]).startswith("pick"):
                after_miss["replans"] += 1
                after_miss["place"] += words(chosen.subtask).startswith("place")
        return steps

    actor.act_batch = recording_act_batch
    results = run_episodes(envs, actor, seeds=[args.seed + k for k in range(args.episodes)], split=args.split,
                           replan_every=replan)
    success = sum(r.success for r, _ in results)
    distance = np.array([d for d, _ in closes])
    grasped = np.array([g for _, g in closes], dtype=bool)
    table = Table(title=f"{recipe.name}: pick-and-place closes, {args.split}, subtasks {args.subtasks}, replan every "
                        f"{replan}: {success}/{args.episodes} episodes succeeded, {len(closes)} closes")
    for col in ("distance to the object", "closes", "grasped"):
        table.add_column(col, justify="right")
    for lo, hi in zip(BANDS[:-1], BANDS[1:]):
        band = (distance >= lo) & (distance < hi)
        table.add_row(f"{lo:.3f}-{hi:.3f}" if np.isfinite(hi) else f">= {lo:.3f}", str(int(band.sum())),
                      str(int(grasped[band].sum())))
    table.add_row("all", str(len(closes)), str(int(grasped.sum())))
    console.print(table)
    if args.subtasks == "predicted":
        n = after_miss["replans"]
        console.print(f"after a miss (jaws closed on nothing, env label 'pick up'): {n} replans; the policy said "
                      f"'place' at {after_miss['place']}" + (f" ({after_miss['place'] / n:.0%})" if n else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
