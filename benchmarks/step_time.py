"""Training-step time of a recipe's stage, and of variants of it, measured in alternating rounds.

    .venv/bin/python benchmarks/step_time.py [--recipe pi05_tabletop] [--stage posttrain]
        [--variant 'noise2: model.heads.flow_matching.noise_samples=2'] [--rounds 6] [--steps 9]
        [--threads 2] [--cache-dir DIR] [--set KEY=VALUE ...]

Builds the recipe's policy (and one per ``--variant``, each a name and ``;``-separated recipe
overrides), makes ``--steps`` batches of the stage's mixture once, and times one forward and
backward pass of the stage's losses per batch, under the backend's autocast, as training runs them
(without the optimizer step). The policies take turns for ``--rounds`` rounds in this one process,
so a slower or faster moment of the machine touches every variant alike; the medians of the rounds'
mean step times and their ratios to the first policy are printed. Keep the machine otherwise idle.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``'name: a.b=1; c=2'`` -> ``('name', ['a.b=1', 'c=2'])``."""
    name, sep, rest = text.partition(":")
    overrides = [o.strip() for o in rest.split(";") if o.strip()]
    if not sep or not name.strip() or not overrides:
        raise SystemExit(f"--variant wants 'NAME: KEY=VALUE; KEY=VALUE', got {text!r}")
    return name.strip(), overrides


def time_steps(policy: Any, batches: list[Any], losses: dict[str, float], autocast: Any) -> float:
    """Mean seconds of one forward + backward pass over ``batches``."""
    start = time.perf_counter()
    for batch in batches:
        with autocast:
            out = policy.compute_loss(batch, losses=list(losses))
            total = sum(weight * out[name] for name, weight in losses.items())
        total.backward()
        policy.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="pi05_tabletop")
    parser.add_argument("--stage", default=None, help="stage whose mixture and losses are timed (default: the last)")
    parser.add_argument("--variant", action="append", default=[], help="'NAME: KEY=VALUE; KEY=VALUE' (repeatable)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override for every policy")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=9, help="batches (steps) per round and policy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default=None, help="the recipe's data cache (generated there if missing)")
    args = parser.parse_args()

    import torch
    from rich.console import Console

    from vlakit.backends import select_backend
    from vlakit.data import build_train_loader
    from vlakit.recipe.build import build_policy
    from vlakit.recipe.load import load_recipe
    from vlakit.training.run import prepare_inputs, seed_everything
    from vlakit.training.stage_data import with_weights

    torch.set_num_threads(args.threads)
    common = list(args.overrides) + ([f"data.cache_dir={args.cache_dir}"] if args.cache_dir else [])
    variants = [("recipe", [])] + [parse_variant(v) for v in args.variant]
    recipes = {name: load_recipe(args.recipe, common + extra) for name, extra in variants}
    base = recipes["recipe"]
    stages = {s.name: s for s in base.train.stages}
    if args.stage and args.stage not in stages:
        raise SystemExit(f"recipe {args.recipe!r} has no stage {args.stage!r}; its stages: {sorted(stages)}")
    stage = stages[args.stage] if args.stage else base.train.stages[-1]
    with tempfile.TemporaryDirectory(prefix="vlakit-step-time-") as tmp:
        norm_stats, action_tok = prepare_inputs(base, out_dir=Path(tmp), console=Console(), progress=True, write=False)
    loader = build_train_loader(with_weights(base.data, stage.mixture or {}), model_spec=base.model,
                                norm_stats=norm_stats, seed=0)
    batches = [next(loader) for _ in range(args.steps)]
    losses = {name: weight for name, weight in stage.losses.items() if weight}
    policies, autocasts = {}, {}
    for name, recipe in recipes.items():
        seed_everything(recipe.train.seed)
        policies[name] = build_policy(recipe, device="cpu", action_tokenizer=action_tok).train()
        autocasts[name] = select_backend(recipe.backend, precision=recipe.train.precision).autocast()
        torch.set_num_threads(args.threads)  # the backend may have set its own
    print(f"stage {stage.name!r}, losses {losses}, batch {base.data.batch_size}, {args.threads} threads, "
          f"{args.rounds} rounds of {args.steps} steps")
    for name, policy in policies.items():  # warm-up (first-call allocations)
        time_steps(policy, batches[:2], losses, autocasts[name])
    times: dict[str, list[float]] = {name: [] for name in policies}
    for _ in range(args.rounds):
        for name, policy in policies.items():
            times[name].append(time_steps(policy, batches, losses, autocasts[name]))
    first = statistics.median(times["recipe"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:>16}: {med * 1000:7.1f} ms per step (rounds {min(ts) * 1000:.0f}-{max(ts) * 1000:.0f}), "
              f"{med / first:.2f}x the recipe's")


if __name__ == "__main__":
    main()
