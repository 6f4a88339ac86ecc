"""First actions: on fresh scenes, does a trained policy head where the scripted expert heads?

    .venv/bin/python benchmarks/first_actions.py runs/pi05_tabletop/policy [--episodes 40] [--samples 8]
        [--families reach,pick_place] [--splits train,unseen] [--seed 1000]

For each split and task family, ``--episodes`` episodes of the policy's evaluation env are reset
(seeds ``--seed`` onwards) and the policy acts ``--samples`` times on the first frame, as deployed
(subtask decoding included when the recipe predicts one). Printed per row:

* **cos sampled**: the mean cosine between a sampled first action's motion (the action dims before
  the last, the gripper command) and the scripted expert's;
* **cos of mean**: the same for the mean of the samples (what the policy "means" on average);
* **sampled > 0.9**: the share of samples within about 25 degrees of the expert's direction;
* **subtask right**: the share of first frames whose greedily decoded subtask equals the env's label
  (``-`` when the recipe does not predict one); with grid points in the subtask text
  (``subtask_points``), its words, and **object cell ±1**: how often the predicted object grid cell
  ("... at 3 5") is within one cell of the true one, in each direction;
* with ``model.point_query``, **query error**: the table distance between the query's object point
  (read from the robot prompt, or asked by name with ``point_query.ask``) and the object's;
* with ``flow_matching.point_weight`` > 0, **point grounded** / **point error**: the point head's
  reading of the action tokens at the first Euler step (t = 1): how often the object nearest its
  predicted object position is the subtask's, and its distance from it (table units).

A first frame is the state every episode starts from, so a low cosine here is a fitting problem and
not drift into states the demonstrations never showed. Needs an env with ``expert_action()`` and
``subtask()`` (the tabletop world). The measurement behind README: Results, "The flow objective is
the slow learner".
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

from vlakit.evaluation.actors import subtask_points
from vlakit.evaluation.evaluator import make_env
from vlakit.nn.point_regression import to_table
from vlakit.policy_io import load_policy


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-9))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", type=Path, help="policy folder (runs/<recipe>/policy)")
    parser.add_argument("--episodes", type=int, default=40, help="first frames per split and family")
    parser.add_argument("--samples", type=int, default=8, help="action chunks sampled per first frame")
    parser.add_argument("--families", default=None, help="comma-separated (default: the eval env's families)")
    parser.add_argument("--splits", default=None, help="comma-separated (default: the recipe's eval.splits)")
    parser.add_argument("--seed", type=int, default=1000, help="first episode seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    console = Console(width=None if sys.stdout.isatty() else 200)

    loaded = load_policy(args.policy, backend="cpu")
    recipe = loaded.recipe
    spec = recipe.eval.env
    families = args.families.split(",") if args.families else list(getattr(spec, "families", []))
    splits = args.splits.split(",") if args.splits else list(recipe.eval.splits)
    if not families:
        raise SystemExit(f"env {spec.type!r} has no task families; pass --families")
    table = Table(title=f"{recipe.name}: first action against the scripted expert's ({args.episodes} first frames "
                        f"x {args.samples} samples)")
    head = loaded.policy.heads[recipe.model.inference.actions_from]
    point_proj = getattr(head, "point_proj", None)
    columns = ["split", "family", "cos sampled", "cos of mean", "sampled > 0.9", "subtask right"]
    bins = subtask_points(recipe)  # the subtask text carries grid points ("... at 3 5")
    if bins is not None:
        columns += ["object cell ±1"]
    query = recipe.model.point_query is not None
    if query:
        columns += ["query error"]
    if point_proj is not None:
        columns += ["point grounded", "point error"]
    for col in columns:
        table.add_column(col, justify="right")
    first_hidden: list[torch.Tensor] = []
    if point_proj is not None:  # the action tokens at the first Euler step (t = 1), what the point loss reads
        head.action_out_proj.register_forward_hook(
            lambda _m, inputs, _o: first_hidden.append(inputs[0].detach()) if not first_hidden else None)
    for split in splits:
        for family in families:
            env = make_env(type(spec).model_validate({**spec.model_dump(), "families": [family]}), split=split)
            if not hasattr(env, "expert_action"):
                raise SystemExit(f"env {spec.type!r} has no scripted expert (expert_action)")
            sampled, of_mean, close, subtask_right, grounded, point_err, cell = [], [], [], [], [], [], []
            query_err = []
            for k in range(args.episodes):
                obs = env.reset(seed=args.seed + k)
                expert = np.asarray(env.expert_action())[:-1]
                first_hidden.clear()
                result = loaded.infer_batch([obs] * args.samples, robot_type=getattr(env, "robot_type", None))
                if first_hidden:
                    with torch.no_grad():
                        point = to_table(point_proj(first_hidden[0].float().mean(1)))[0, :2].numpy()
                    target = np.asarray(obs.info["subtask_point"])[:2]
                    objects = np.asarray(env.world.positions)
                    nearest = int(np.argmin(np.linalg.norm(objects - point, axis=1)))
                    grounded.append(nearest == int(np.argmin(np.linalg.norm(objects - target, axis=1))))
                    point_err.append(float(np.linalg.norm(point - target)))
                if result.points is not None and obs.info["subtask_point"][0] >= 0:
                    asked = np.asarray(result.points)[0, :2]
                    if np.isfinite(asked).all():
                        query_err.append(float(np.linalg.norm(asked - np.asarray(obs.info["subtask_point"])[:2])))
                first = np.asarray(result.actions)[:, 0, :-1]
                cos = [cosine(a, expert) for a in first]
                sampled.append(np.mean(cos))
                close.append(np.mean(np.array(cos) > 0.9))
                of_mean.append(cosine(first.mean(0), expert))
                if result.subtask is not None:
                    said = result.subtask[0]
                    if bins is not None:  # the words and the object's grid cell separately
                        m = re.search(r" at (\d+) (\d+)", said)
                        true = obs.info["subtask_point"][:2]
                        if true[0] >= 0:
                            want = [min(int(v * bins), bins - 1) for v in true]
                            cell.append(m is not None and max(abs(int(m[1]) - want[0]), abs(int(m[2]) - want[1])) <= 1)
                        said = re.split(r" at \d| to \d", said)[0]
                    subtask_right.append(said == env.subtask())
            row = [split, family, f"{np.mean(sampled):.2f}", f"{np.mean(of_mean):.2f}", f"{np.mean(close):.2f}",
                   f"{np.mean(subtask_right):.2f}" if subtask_right else "-"]
            if bins is not None:
                row += [f"{np.mean(cell):.2f}" if cell else "-"]
            if query:
                row += [f"{np.mean(query_err):.3f} ({len(query_err)})" if query_err else "-"]
            if point_proj is not None:
                row += [f"{np.mean(grounded):.2f}", f"{np.mean(point_err):.3f}"]
            table.add_row(*row)
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
