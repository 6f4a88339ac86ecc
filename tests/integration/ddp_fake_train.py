"""Helper script (not a test): 2-process CPU DDP training of the fake policy over gloo.

Usage: python ddp_fake_train.py OUT_DIR. Lightning's DDP launcher re-runs this script for rank 1.
Rank 0 writes OUT_DIR/weights_rank0.pt; every rank writes OUT_DIR/rank<r>.json with its world size.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from rich.console import Console
from training_fakes import FakeLoader, FakePolicy

from vlakit.backends import select_backend
from vlakit.recipe.train_spec import TrainSpec
from vlakit.training.data import DataFeed
from vlakit.training.run import quiet_lightning
from vlakit.training.stages import run_stages


def main(out: Path) -> None:
    quiet_lightning()
    torch.manual_seed(0)
    policy = FakePolicy()
    train = TrainSpec.model_validate({
        "stages": [{"name": "pre", "steps": 4, "losses": {"text": 1.0}},
                   {"name": "post", "steps": 4, "losses": {"text": 1.0, "flow_matching": 1.0}}],
        "optimizer": {"lr": 1e-2}, "schedule": {"warmup_steps": 1}, "ema_decay": 0.9,
        "strategy": "ddp", "devices": 2, "log_every": 2, "checkpoint_every": 2})
    ranks = []

    def make_loader(*, rank: int, world_size: int) -> FakeLoader:
        ranks.append((rank, world_size))
        return FakeLoader(rank=rank, world_size=world_size)

    result = run_stages(policy=policy, train=train, feed=DataFeed(make_loader), out_dir=out,
                        backend=select_backend("cpu", precision="32-true"), resume=False,
                        console=Console(stderr=True), progress=False)
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    (out / f"rank{rank}.json").write_text(json.dumps({"loaders": ranks, "steps": result.total_steps}))
    torch.save({k: v.detach().clone() for k, v in policy.state_dict().items()}, out / f"weights_rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
