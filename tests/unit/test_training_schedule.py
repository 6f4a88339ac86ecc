"""Warmup + cosine schedule, EMA, metrics CSV and loss-curve artefacts."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from PIL import Image
from torch import nn

from vlakit.training.report import plot_loss_curve, write_metrics_csv
from vlakit.training.schedule import Ema, warmup_cosine


def test_warmup_cosine_shape():
    kw = {"total_steps": 100, "warmup_steps": 10, "final_lr_ratio": 0.1}
    lrs = [warmup_cosine(s, **kw) for s in range(101)]
    assert lrs[0] == pytest.approx(1 / 11)  # openpi: init_value = peak / (warmup + 1)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[100] == pytest.approx(0.1)
    mid = warmup_cosine(55, **kw)  # half-way through the decay: the cosine is at its midpoint
    assert mid == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_warmup_longer_than_stage_is_capped():
    lrs = [warmup_cosine(s, total_steps=5, warmup_steps=1000, final_lr_ratio=0.0) for s in range(5)]
    assert max(lrs) <= 1.0 and lrs == sorted(lrs)


def test_ema_update_and_copy():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    ema = Ema(net, decay=0.75)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    expected = 0.75 * start + 0.25 * net.weight.detach()
    torch.testing.assert_close(ema.shadow["weight"], expected)
    state = ema.state_dict()
    other = Ema(nn.Linear(3, 2), decay=0.5)
    other.load_state_dict(state)
    assert other.decay == 0.75
    target = nn.Linear(3, 2)
    other.copy_to(target)
    torch.testing.assert_close(target.weight.detach(), expected)
    with pytest.raises(KeyError):
        Ema(nn.Linear(2, 2, bias=False), decay=0.5).load_state_dict(state)
    with pytest.raises(ValueError):
        Ema(net, decay=1.0)


def test_metrics_csv_and_curve(tmp_path):
    records = [{"stage": "pre", "step": 1, "stage_step": 1, "lr": 1e-3, "text": 2.0, "loss": 2.0},
               {"stage": "post", "step": 2, "stage_step": 1, "lr": 1e-3, "text": 1.5, "flow_matching": 0.5,
                "loss": 6.5}]
    write_metrics_csv(records, tmp_path / "m.csv")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert rows[0]["flow_matching"] == "" and float(rows[1]["flow_matching"]) == 0.5
    plot_loss_curve(records, tmp_path / "curve.png")
    assert Image.open(tmp_path / "curve.png").size == (800, 450)


def test_train_spec_rejects_bad_stages():
    from pydantic import ValidationError

    from vlakit.recipe.train_spec import TrainSpec

    ok = {"name": "a", "steps": 1, "losses": {"text": 1.0}}
    with pytest.raises(ValidationError, match="unique"):
        TrainSpec.model_validate({"stages": [ok, ok]})
    with pytest.raises(ValidationError, match=">= 0"):
        TrainSpec.model_validate({"stages": [{**ok, "losses": {"text": -1.0}}]})
    with pytest.raises(ValidationError, match="> 0"):
        TrainSpec.model_validate({"stages": [{**ok, "losses": {"text": 0.0}}]})
    with pytest.raises(ValidationError, match="folder"):
        TrainSpec.model_validate({"stages": [{**ok, "name": "a/b"}]})


def test_ema_follows_the_model_to_another_device():
    """The EMA is made while the policy is on the CPU; the trainer then moves the policy (to a GPU in
    real runs; the meta device here) and the shadow must follow instead of failing on mixed devices."""
    net = nn.Linear(3, 2)
    ema = Ema(net, decay=0.5)
    net.to("meta")
    ema.update(net)
    assert all(t.device.type == "meta" for t in ema.shadow.values())


def _adamw_trajectory(implementation: str, steps: int = 5) -> tuple[torch.optim.AdamW, list[torch.Tensor]]:
    from vlakit.recipe.train_spec import OptimizerSpec
    from vlakit.training.module import build_adamw

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 2))
    opt = build_adamw(list(net.parameters()), OptimizerSpec(lr=1e-2, weight_decay=0.1,
                                                            implementation=implementation))
    x = torch.randn(16, 6)
    for _ in range(steps):
        net(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    return opt, [p.detach().clone() for p in net.parameters()]


def test_adamw_implementations_take_the_same_steps():
    _, reference = _adamw_trajectory("loop")
    moved = [p for p in reference]
    for impl in ("fused", "foreach", "auto"):
        _, params = _adamw_trajectory(impl)
        for a, b in zip(params, reference):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    _, start = _adamw_trajectory("loop", steps=0)
    assert any(not torch.equal(a, b) for a, b in zip(start, moved))  # the steps did move the weights


def test_adamw_auto_fuses_on_cpu_but_not_where_torch_cannot():
    from vlakit.recipe.train_spec import OptimizerSpec
    from vlakit.training.module import build_adamw

    opt, _ = _adamw_trajectory("auto", steps=0)
    assert opt.defaults["fused"] is True
    meta = [nn.Parameter(torch.empty(3, device="meta"))]
    assert not build_adamw(meta, OptimizerSpec()).defaults["fused"]
    assert _adamw_trajectory("loop", steps=0)[0].defaults["foreach"] is False
