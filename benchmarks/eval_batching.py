"""Batched evaluation: wall time of closed-loop evaluation one episode at a time against episodes
rolled out in lockstep with one batched policy call per replan (``eval.batch_size``).

    .venv/bin/python benchmarks/eval_batching.py runs/pi05_tabletop/policy [--episodes 30] [--batch-size 30]
        [--threads 1]

Both runs evaluate the same episodes (seeds 0 onwards, the recipe's splits and replanning) in one
process, so the ratio is comparable across machines. Success rates are printed too: they differ
only by the policy's sampling noise (the same episodes, another random stream), not systematically.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

from vlakit.evaluation import PolicyActor, evaluate
from vlakit.policy_io import load_policy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", type=Path, help="policy folder (runs/<recipe>/policy)")
    parser.add_argument("--episodes", type=int, default=30, help="episodes per split")
    parser.add_argument("--batch-size", type=int, default=30, help="episodes per batched call")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_policy(args.policy, backend="cpu")
    spec = loaded.recipe.eval
    rows = []
    for batch in (1, args.batch_size):
        torch.manual_seed(0)
        start = time.perf_counter()
        report = evaluate(make_actor=lambda: PolicyActor(loaded, camera_map=dict(spec.camera_map)), env_spec=spec.env,
                          splits=list(spec.splits), episodes=args.episodes, replan_every=spec.replan_every,
                          seed=spec.seed, strip_episodes=0, batch_size=batch)
        wall = time.perf_counter() - start
        rates = " / ".join(f"{s} {100 * report.rate(s):.1f} %" for s in spec.splits)
        rows.append(wall)
        print(f"batch size {batch:>3}: {wall:6.1f} s for {args.episodes * len(spec.splits)} episodes ({rates})",
              flush=True)
    print(f"batched evaluation is {rows[0] / rows[1]:.1f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
