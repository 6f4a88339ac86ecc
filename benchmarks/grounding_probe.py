"""Grounding probe: how fast does a recipe's backbone learn *which* object an instruction names?

    .venv/bin/python benchmarks/grounding_probe.py [--recipe pi05_tabletop] [--steps 2000] [--scenes 6000]
        [--readers vlm,expert,flow] [--vision both|scratch|pretrained] [--seeds 0,1,2] [--set KEY=VALUE]
        [--families reach]

The model sees the overhead image and a "reach the X" prompt (no state) and must output the named
object's table position. ``--families push,pick_place`` uses those families' instructions instead
("put the X in the Y zone": two colours, one of them a zone's); the target stays the named object.
Vision and language train with it (AdamW, lr 1e-3, batch 32, bf16 autocast, one thread). Every 250
steps (``--check-every``) it prints, on 300 (``--eval-scenes``) fresh ``train`` and as many
``unseen`` first frames, how often the object nearest the prediction is the named one ("grounded";
chance is about 35 % with 2-4 objects) and how often the prediction lands within the reach tolerance ("hit").

Readers -- what turns the backbone into a position:

- ``vlm``: a learned query token joins the prefix (the VLM's weights); a linear head regresses it.
- ``expert``: the flow head's action tokens (the action expert's weights, t = 1, zero chunk), averaged
  over the horizon; a linear head regresses them. The flow head's path, trained by plain regression.
- ``flow``: the policy's own flow-matching loss (``compute_loss``, so ``noise_samples``,
  ``time_beta``, ``prediction`` and ``noise_correlation`` apply) on a chunk holding the position at every step; the
  prediction is the first action of ``sample_actions`` (Euler steps from noise).

``--vision both`` runs every reader with the vision encoder from scratch, then after the recipe's
``train.vision_pretrain`` (one pre-training per seed, shared by the readers). The summary table
gives the grounded rate on unseen scenes at each check and the first step at which it reaches 0.70.
These measurements are behind the tabletop recipes' vision pre-training and the flow head study
(README: Results).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from vlakit.envs.tabletop import TabletopConfig, TabletopEnv
from vlakit.envs.tabletop.tasks import REACH_TOLERANCE
from vlakit.nn.segments import Segment
from vlakit.recipe.build import build_policy
from vlakit.recipe.load import load_recipe
from vlakit.training.vision_pretrain import pretrain_vision
from vlakit.types import Batch, Observation


def first_frames(split: str, n: int, seed0: int, families: tuple[str, ...] = ("reach",)) -> dict:
    env = TabletopEnv(TabletopConfig(split=split, families=families))
    images, prompts, targets, objects = [], [], [], []
    for k in range(n):
        obs = env.reset(seed=seed0 + k)
        images.append(obs.images["overhead"])
        prompts.append(obs.prompt)
        targets.append(env.world.positions[env.task.target].copy())
        objects.append(env.world.positions.copy())
    return {"images": torch.from_numpy(np.stack(images)), "prompts": prompts,
            "targets": torch.tensor(np.array(targets), dtype=torch.float32), "objects": objects}


class _Regressor(nn.Module):
    """A reader whose forward returns table positions, trained by squared error on them."""

    def loss(self, images: torch.Tensor, prompts: list[str], targets: torch.Tensor) -> torch.Tensor:
        return ((self(images, prompts) - targets) ** 2).sum(1).mean()


class Probe(_Regressor):
    """``vlm`` reader: a learned query token in the prefix (the VLM's weights), then a linear head."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        width = policy.language.expert_widths[0]
        self.query = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.head = nn.Linear(width, 2)

    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        b = len(prompts)
        segs = self.policy.prefix_segments(observation(images, prompts))
        segs.append(Segment("query", self.query.expand(b, 1, -1), torch.ones(b, 1, dtype=torch.bool), expert=0,
                            attention="prefix"))
        hidden = self.policy.runner.run(segs).hidden["query"][:, 0]
        return to_table(self.head(hidden.float()))


class ExpertProbe(_Regressor):
    """``expert`` reader: the flow head's action tokens (action expert weights) at t = 1 over a zero
    chunk, averaged over the horizon, then a linear head -- the flow head's path, regressed directly."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        self.flow = policy.heads["flow_matching"]
        self.head = nn.Linear(policy.language.expert_widths[self.flow.expert_index], 2)

    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        b = len(prompts)
        segs = self.policy.prefix_segments(observation(images, prompts))
        chunk = torch.zeros(b, self.flow.horizon, self.flow.action_dim)
        suffix, cond = self.flow.suffix(chunk, torch.ones(b), None)
        hidden = self.policy.runner.run(segs + suffix, conds={self.flow.expert_index: cond}).hidden["actions"]
        return to_table(self.head(hidden.float().mean(1)))


class FlowProbe(nn.Module):
    """``flow`` reader: the policy's own flow-matching loss on a chunk that holds the object's position
    (scaled to [-1, 1]) at every step; predictions are the first action of ``sample_actions``."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy
        flow = policy.heads["flow_matching"]
        self.horizon, self.action_dim = flow.horizon, flow.action_dim

    def forward(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        chunk = self.policy.sample_actions(observation(images, prompts)).actions
        return (chunk[:, 0, :2].float() + 1.0) / 2.0

    def loss(self, images: torch.Tensor, prompts: list[str], targets: torch.Tensor) -> torch.Tensor:
        b = len(prompts)
        actions = torch.zeros(b, self.horizon, self.action_dim)
        actions[:, :, :2] = (targets * 2.0 - 1.0)[:, None, :]
        dim_mask = torch.zeros(b, self.action_dim, dtype=torch.bool)
        dim_mask[:, :2] = True
        batch = Batch(observation=observation(images, prompts), actions=actions,
                      action_is_pad=torch.zeros(b, self.horizon, dtype=torch.bool), action_dim_mask=dim_mask,
                      has_actions=torch.ones(b, dtype=torch.bool), target_text=[None] * b)
        return self.policy.compute_loss(batch, losses={"flow_matching"})["flow_matching"]


READERS = {"vlm": Probe, "expert": ExpertProbe, "flow": FlowProbe}


def observation(images: torch.Tensor, prompts: list[str]) -> Observation:
    b = len(prompts)
    dim = 8  # no state: the probe asks only where the named object is
    return Observation(images={"overhead": images}, image_masks={}, state=torch.zeros(b, dim),
                       state_mask=torch.zeros(b, dim, dtype=torch.bool), prompt=prompts)


def to_table(xy: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(xy) * 1.2 - 0.1  # the table is [0, 1]^2


@torch.no_grad()
def measure(probe: nn.Module, data: dict) -> tuple[float, float]:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pred = torch.cat([probe(data["images"][i:i + 100], data["prompts"][i:i + 100])
                          for i in range(0, len(data["prompts"]), 100)]).float()
    hit = float(((pred - data["targets"]).norm(dim=1) <= REACH_TOLERANCE).float().mean())
    def nearest(objects: np.ndarray, xy: torch.Tensor) -> int:
        return int(np.argmin(np.linalg.norm(objects - xy.numpy(), axis=1)))

    grounded = np.mean([nearest(o, p) == nearest(o, t) for o, p, t in zip(data["objects"], pred, data["targets"])])
    return float(grounded), hit


def run(recipe, *, pretrain: bool, reader: str, seed: int, steps: int, data: dict, console: Console,
        pretrained: dict[int, dict], check_every: int = 250) -> list[tuple[int, float, float]]:
    torch.manual_seed(seed)
    policy = build_policy(recipe)
    if pretrain and seed in pretrained:  # one vision pre-training per seed, shared by the readers
        policy.vision.load_state_dict(pretrained[seed])
    elif pretrain:
        report = pretrain_vision(policy.vision, recipe.train.vision_pretrain, console=console, progress=False,
                                 autocast=torch.autocast("cpu", dtype=torch.bfloat16))
        console.print(f"  vision pretrain: {report['wall_s']:.0f}s, held-out {report.get('held_out')}")
        pretrained[seed] = {k: v.clone() for k, v in policy.vision.state_dict().items()}
    probe = READERS[reader](policy)
    params = list(probe.parameters())  # parameters the reader does not use get no gradient and stay put
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    curve, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * min(1.0, step / 100)
        idx = torch.randint(0, len(data["train"]["prompts"]), (32,), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = probe.loss(data["train"]["images"][idx], [data["train"]["prompts"][i] for i in idx],
                              data["train"]["targets"][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % check_every == 0:
            (g_tr, h_tr), (g_un, h_un) = measure(probe, data["eval_train"]), measure(probe, data["eval_unseen"])
            curve.append((step, g_tr, g_un))
            console.print(f"  step {step:5d}  loss {loss.item():.4f}  grounded train {g_tr:.2f} unseen {g_un:.2f}  "
                          f"hit train {h_tr:.2f} unseen {h_un:.2f}  ({time.perf_counter() - t0:.0f}s)")
    return curve


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="pi05_tabletop")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--scenes", type=int, default=6000, help="training first frames")
    ap.add_argument("--eval-scenes", type=int, default=300, help="held-out first frames per split")
    ap.add_argument("--check-every", type=int, default=250, help="steps between measurements")
    ap.add_argument("--readers", default="vlm", help="comma-separated: vlm, expert, flow (see the module doc)")
    ap.add_argument("--vision", choices=("both", "scratch", "pretrained"), default="both")
    ap.add_argument("--families", default="reach",
                    help="comma-separated task families whose first frames and instructions are used; the target "
                         "is always the named object (push and pick-and-place instructions also name a zone)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds: one run per reader and seed")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe override, e.g. model.heads.flow_matching.time_beta=[5,1] (repeatable)")
    args = ap.parse_args(argv)
    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    unknown = sorted(set(readers) - set(READERS))
    if unknown:
        raise SystemExit(f"unknown reader(s) {unknown}; choose from {sorted(READERS)}")
    torch.set_num_threads(1)
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log file gets the full table
    # overhead camera only; no subtask decoding before the flow reader's actions (nothing trains it);
    # the expert must find the object itself, so it is not handed the subtask point (point_input)
    recipe = load_recipe(args.recipe, ["model.cameras=[overhead]", "model.inference.predict_subtask=false",
                                       "model.heads.flow_matching.point_input=false", *args.overrides])
    if args.vision != "scratch" and (recipe.train is None or recipe.train.vision_pretrain is None):
        raise SystemExit(f"recipe {args.recipe} has no train.vision_pretrain to compare against")
    families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    data = {"train": first_frames("train", args.scenes, 5_000_000, families),
            "eval_train": first_frames("train", args.eval_scenes, 6_000_000, families),
            "eval_unseen": first_frames("unseen", args.eval_scenes, 6_000_000, families)}
    pretrains = {"both": (False, True), "scratch": (False,), "pretrained": (True,)}[args.vision]
    rows, pretrained = [], {}
    for pretrain in pretrains:
        for reader in readers:
            for seed in seeds:
                console.print(f"[bold]{args.recipe}: vision {'pre-trained' if pretrain else 'from scratch'}, "
                              f"reader {reader}, seed {seed}[/]")
                curve = run(recipe, pretrain=pretrain, reader=reader, seed=seed, steps=args.steps, data=data,
                            console=console, pretrained=pretrained, check_every=args.check_every)
                rows.append(("pre-trained" if pretrain else "scratch", reader, seed, curve))

    def first(curve: list, level: float = 0.7) -> str:
        return next((str(s) for s, _g, u in curve if u >= level), f"> {args.steps}")

    table = Table(title="named object grounded on unseen scenes (chance ~0.35)")
    for col in ("vision", "reader", "seed", *(f"step {s}" for s, _g, _u in rows[0][3]), "steps to >= 0.70"):
        table.add_column(col, justify="right")
    for vision, reader, seed, curve in rows:
        table.add_row(vision, reader, str(seed), *(f"{u:.2f}" for _s, _g, u in curve), first(curve))
    console.print(table)


if __name__ == "__main__":
    main()
