"""Grounding probe: how fast does a recipe's backbone learn *which* object an instruction names?

    .venv/bin/python benchmarks/grounding_probe.py [--recipe pi05_tabletop] [--steps 2000] [--scenes 6000]

One learned query token joins the prefix (overhead image + "reach the X" prompt) and a linear head
regresses the named object's table position from its output; vision and language train with it
(AdamW, lr 1e-3, batch 32, bf16 autocast, one thread). Every 250 steps it prints, on 300 fresh
``train`` and 300 ``unseen`` first frames, how often the object nearest the prediction is the named
one ("grounded"; chance is about 35 % with 2-4 objects) and how often the prediction lands within
the reach tolerance ("hit").

It runs twice in one process -- the vision encoder from scratch, then after the recipe's
``train.vision_pretrain`` -- so the two curves are directly comparable. This is the measurement
behind the tabletop recipes' vision pre-training (README: Results).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
# run as a script, this folder is sys.path[0], where the sibling tokenizers.py would shadow the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np
import torch
from rich.console import Console
from torch import nn

from vlakit.envs.tabletop import TabletopConfig, TabletopEnv
from vlakit.envs.tabletop.tasks import REACH_TOLERANCE
from vlakit.nn.segments import Segment
from vlakit.recipe.build import build_policy
from vlakit.recipe.load import load_recipe
from vlakit.training.vision_pretrain import pretrain_vision
from vlakit.types import Observation


def first_frames(split: str, n: int, seed0: int) -> dict:
    env = TabletopEnv(TabletopConfig(split=split, families=("reach",)))
    images, prompts, targets, objects = [], [], [], []
    for k in range(n):
        obs = env.reset(seed=seed0 + k)
        images.append(obs.images["overhead"])
        prompts.append(obs.prompt)
        targets.append(env.world.positions[env.task.target].copy())
        objects.append(env.world.positions.copy())
    return {"images": torch.from_numpy(np.stack(images)), "prompts": prompts,
            "targets": torch.tensor(np.array(targets), dtype=torch.float32), "objects": objects}


class Probe(nn.Module):
    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        width = policy.language.expert_widths[0]
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.head = nn.Linear(width, 2)

    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        b = len(prompts)
        dim = 8  # no state: the probe asks only where the named object is
        obs = Observation(images={"overhead": images}, image_masks={}, state=torch.zeros(b, dim),
                          state_mask=torch.zeros(b, dim, dtype=torch.bool), prompt=prompts)
        segs = self.policy.prefix_segments(obs)
        segs.append(Segment("query", self.query.expand(b, 1, -1), torch.ones(b, 1, dtype=torch.bool), expert=0,
                            attention="prefix"))
        hidden = self.policy.runner.run(segs).hidden["query"][:, 0]
        return torch.sigmoid(self.head(hidden.float())) * 1.2 - 0.1  # table is [0, 1]^2


@torch.no_grad()
def measure(probe: Probe, data: dict) -> tuple[float, float]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = torch.cat([probe(data["images"][i:i + 100], data["prompts"][i:i + 100])
                          for i in range(0, len(data["prompts"]), 100)]).float()
    hit = float(((pred - data["targets"]).norm(dim=1) <= REACH_TOLERANCE).float().mean())
    def nearest(objects: np.ndarray, xy: torch.Tensor) -> int:
        return int(np.argmin(np.linalg.norm(objects - xy.numpy(), axis=1)))

    grounded = np.mean([nearest(o, p) == nearest(o, t) for o, p, t in zip(data["objects"], pred, data["targets"])])
    return float(grounded), hit


def run(recipe, *, pretrain: bool, steps: int, data: dict, console: Console) -> list[tuple[int, float, float]]:
    torch.manual_seed(0)
    policy = build_policy(recipe)
    if pretrain:
        report = pretrain_vision(policy.vision, recipe.train.vision_pretrain, console=console, progress=False,
                                 autocast=torch.autocast("cpu", dtype=torch.bfloat16))
        console.print(f"  vision pretrain: {report['wall_s']:.0f}s, held-out {report.get('held_out')}")
    probe = Probe(policy)
    params = [p for n, p in probe.named_parameters() if not n.startswith("policy.heads.")]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(0)
    curve, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * min(1.0, step / 100)
        idx = torch.randint(0, len(data["train"]["prompts"]), (32,), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = probe(data["train"]["images"][idx], [data["train"]["prompts"][i] for i in idx])
        loss = ((pred - data["train"]["targets"][idx]) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 250 == 0:
            (g_tr, h_tr), (g_un, h_un) = measure(probe, data["eval_train"]), measure(probe, data["eval_unseen"])
            curve.append((step, g_tr, g_un))
            console.print(f"  step {step:5d}  loss {loss.item():.4f}  grounded train {g_tr:.2f} unseen {g_un:.2f}  "
                          f"hit train {h_tr:.2f} unseen {h_un:.2f}  ({time.perf_counter() - t0:.0f}s)")
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="pi05_tabletop")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--scenes", type=int, default=6000, help="training first frames")
    args = ap.parse_args()
    torch.set_num_threads(1)
    console = Console()
    recipe = load_recipe(args.recipe, ["model.cameras=[overhead]"])
    if recipe.train is None or recipe.train.vision_pretrain is None:
        raise SystemExit(f"recipe {args.recipe} has no train.vision_pretrain to compare against")
    data = {"train": first_frames("train", args.scenes, 5_000_000), "eval_train": first_frames("train", 300, 6_000_000),
            "eval_unseen": first_frames("unseen", 300, 6_000_000)}
    results = {}
    for pretrain in (False, True):
        console.print(f"[bold]{args.recipe}: vision {'pre-trained' if pretrain else 'from scratch'}[/]")
        results[pretrain] = run(recipe, pretrain=pretrain, steps=args.steps, data=data, console=console)

    def first(curve: list, level: float = 0.7) -> str:
        return next((str(s) for s, _g, u in curve if u >= level), f"> {args.steps}")

    console.print(f"steps until unseen grounded >= 0.70: from scratch {first(results[False])}, "
                  f"pre-trained {first(results[True])}")


if __name__ == "__main__":
    main()
