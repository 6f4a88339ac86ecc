"""Dense vision pre-training: the tabletop_scenes labels, the pretrainer, its errors and the recipe field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from vlakit.envs.tabletop.render import OVERHEAD_EXTENT
from vlakit.envs.tabletop.scene import COLOUR_NAMES, COLOURS, SHAPES, combos
from vlakit.recipe.train_spec import VisionPretrainSpec
from vlakit.registry import VISION_ENCODERS, VISION_TASKS
from vlakit.training.vision_pretrain import VisionPretrainError, pretrain_vision


def _task(**kw):
    return VISION_TASKS.config_class("tabletop_scenes")(**kw).build()


def _pairs(data):
    col, shp = data.labels["colour"], data.labels["shape"]
    real = col < len(COLOUR_NAMES)
    return {(COLOUR_NAMES[c], SHAPES[s]) for c, s in zip(col[real], shp[real])}


@pytest.mark.parametrize(("grid", "wrist"), [(4, 0.0), (8, 0.0), (4, 1.0)])
def test_labels_sit_on_the_pixels_of_the_labelled_object(grid, wrist):
    """Rebuild each labelled object's centre from (cell, offset) and look at that pixel: its colour
    must be the labelled colour (up to the home's tint). Overhead and wrist images alike."""
    data = _task(wrist=wrist).generate(40, grid=grid, seed=3)
    if wrist:  # each wrist image looks down next to an object, so it shows one
        assert ((data.labels["colour"] < len(COLOUR_NAMES)).sum(1) >= 1).all()
    lo, hi = OVERHEAD_EXTENT
    size = data.images.shape[1]
    palette = np.array([COLOURS[c] for c in COLOUR_NAMES], np.float64)
    hits = total = 0
    for img, col, off in zip(data.images, data.labels["colour"], data.labels["offset"]):
        for k in np.flatnonzero(col < len(COLOUR_NAMES)):
            row, c = divmod(int(k), grid)
            u, v = c + 0.5 + off[k, 0] / 2, row + 0.5 + off[k, 1] / 2
            px = min(size - 1, int(u / grid * size))
            py = min(size - 1, int(v / grid * size))
            nearest = np.argmin(np.abs(palette - img[py, px].astype(np.float64)).sum(1))
            hits += int(nearest == col[k])
            total += 1
    assert total > (40 if wrist else 60) and hits / total > 0.9, (hits, total)
    assert not np.isnan(data.labels["offset"][data.labels["colour"] < len(COLOUR_NAMES)]).any()
    assert np.isnan(data.labels["offset"][data.labels["colour"] == len(COLOUR_NAMES)]).all()
    assert lo < 0 < 1 < hi  # the overhead camera sees the whole table


def test_scene_pairs_training_all_or_train_only_and_held_out_unseen():
    unseen = set(combos("unseen"))
    web = _pairs(_task().generate(150, grid=4, seed=0))
    assert unseen & web and set(combos("train")) & web  # like web data: pairs the robot data lacks
    assert not unseen & _pairs(_task(pairs="split").generate(150, grid=4, seed=0))
    assert _pairs(_task().generate(60, grid=4, seed=0, held_out=True)) <= unseen
    a, b = _task().generate(5, grid=4, seed=7), _task().generate(5, grid=4, seed=7)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels["zone"], b.labels["zone"])


def test_wrist_share_mixes_wrist_views_into_the_overhead_ones():
    """``wrist: p`` turns about a share p of the images into wrist views (the jaws at the centre), which
    show fewer objects than the overhead ones; ``wrist: 0`` makes none."""
    mixed, overhead = _task(wrist=0.5).generate(60, grid=4, seed=5), _task().generate(60, grid=4, seed=5)

    def has_jaws(img):  # the wrist camera's jaws: two near-black one-pixel lines about the centre
        half = img.shape[0] // 2
        for gap in range(2, 8):
            left, right = img[half - 6:half + 7, half - gap - 1], img[half - 6:half + 7, half + gap + 1]
            outside, between = img[half, half - gap - 2], img[half, half - gap]
            if (left == left[0]).all() and (right == left[0]).all() and (outside != left[0]).any() \
                    and (between != left[0]).any() and int(left[0].astype(int).sum()) < 150:  # near-black
                return True
        return False

    wrist = np.array([has_jaws(img) for img in mixed.images])
    assert 0.25 < wrist.mean() < 0.75, wrist.mean()
    assert not any(has_jaws(img) for img in overhead.images)
    labelled = (mixed.labels["colour"] < len(COLOUR_NAMES)).sum(1)
    assert labelled[wrist].mean() < labelled[~wrist].mean()  # a close-up shows fewer objects


def _encoder():
    return VISION_ENCODERS.config_class("conv")(image_size=64, channels=[8, 16, 16, 16], norm="group",
                                                coord_channels=True).build(out_width=12)


def _spec(**kw):
    return VisionPretrainSpec.model_validate({"task": {"type": "tabletop_scenes"}, "images": 64,
                                              "eval_images": 32, "steps": 25, "batch_size": 16, **kw})


def test_pretraining_lowers_the_losses_trains_only_the_features_and_reports_held_out_metrics():
    torch.manual_seed(0)
    enc = _encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    report = pretrain_vision(enc, _spec(lr=3e-3), progress=False)
    after = enc.state_dict()
    assert set(after) == set(before)  # probes are not attached to the encoder
    assert not torch.equal(after["body.0.weight"], before["body.0.weight"])
    assert torch.equal(after["projector.weight"], before["projector.weight"])  # not used by features()
    assert all(report["final_losses"][k] < report["initial_losses"][k] for k in ("colour", "shape", "offset"))
    held = report["held_out"]
    assert {"colour_acc_objects", "colour_acc_all", "shape_acc_all", "zone_acc_all", "offset_rmse"} <= set(held)
    assert all(0.0 <= held[k] <= 1.0 for k in held if "acc" in k)
    # left in the mode it came in (training, for the stages; Lightning warned of 16 modules in eval mode)
    assert all(m.training for m in enc.modules())
    pretrain_vision(enc.eval(), _spec(lr=3e-3), progress=False)
    assert not any(m.training for m in enc.modules())


def test_encoders_without_a_token_grid_and_diverging_runs_are_refused():
    class Plain(nn.Module):
        num_tokens = 16

    with pytest.raises(VisionPretrainError, match="square token grid"):
        pretrain_vision(Plain(), _spec(), progress=False)

    enc = _encoder()
    original, calls = enc.features, []

    def nan_from_step_3(pixels):
        calls.append(1)
        return original(pixels) * (float("nan") if len(calls) >= 3 else 1.0)

    enc.features = nan_from_step_3
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    with pytest.raises(VisionPretrainError, match="loss became non-finite at step 3"):
        pretrain_vision(enc, _spec(), progress=False)
    # two optimiser steps had changed the encoder; it is restored
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())

    # finite loss, NaN gradient (d sqrt(0)): also caught, before the optimiser step applies it
    enc = _encoder()
    plain = enc.features
    enc.features = lambda pixels: (lambda f: f + torch.sqrt((f - f.detach()).abs()))(plain(pixels))
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    with pytest.raises(VisionPretrainError, match="gradient became non-finite at step 1"):
        pretrain_vision(enc, _spec(), progress=False)
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())


def test_a_batch_without_labelled_cells_is_a_zero_loss_not_a_divergence():
    from vlakit.interfaces.vision_task import DenseTarget
    from vlakit.training.vision_pretrain import _losses

    heads = nn.ModuleDict({"c": nn.Linear(4, 3), "r": nn.Linear(4, 2)})
    targets = [DenseTarget("c", "class", 3), DenseTarget("r", "regress", 2)]
    labels = {"c": torch.full((2, 5), -1), "r": torch.full((2, 5, 2), float("nan"))}
    losses = _losses(torch.randn(2, 5, 4), heads, targets, labels)
    assert all(torch.isfinite(v) and float(v) == 0.0 for v in losses.values())
    labels["c"][0, 1] = 2
    assert float(_losses(torch.randn(2, 5, 4), heads, targets, labels)["c"]) > 0


def test_encoder_forward_is_the_projected_features():
    enc = _encoder()
    pixels = enc.preprocess(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    feats = enc.features(pixels)
    assert feats.shape == (2, enc.grid_size ** 2, enc.feature_width) and enc.grid_size == 4
    assert torch.allclose(enc(pixels), enc.projector(feats))
    sig = VISION_ENCODERS.config_class("siglip")(variant="tiny_patch16_64").build(out_width=12)
    px = sig.preprocess(torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8))
    assert sig.grid_size == 4 and torch.allclose(sig(px), sig.projector(sig.features(px)))
