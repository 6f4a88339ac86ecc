"""train.camera_dropout: hides cameras from training samples at random, validated against the model."""

from __future__ import annotations

import pytest
import torch

try:  # one_thread is an autouse fixture
    from ._doubles import batch, one_thread, tiny_policy
except ImportError:  # run as a rootdir module
    from _doubles import batch, one_thread, tiny_policy  # type: ignore[no-redef]  # noqa: F401
from vlakit.recipe.errors import RecipeError
from vlakit.recipe.load import load_recipe
from vlakit.training.module import drop_cameras

WRIST = "left_wrist_0_rgb"


def test_drop_cameras_hides_each_camera_at_its_rate_and_copies_the_batch():
    policy = tiny_policy("pi05_tiny")
    b = batch(policy.spec, 4000)
    cams = list(b.observation.image_masks)
    b.observation.image_masks[cams[2]][:100] = False  # missing in the data: stays missing
    torch.manual_seed(0)
    out = drop_cameras(b, {WRIST: 0.3, cams[2]: 0.0})
    shown = out.observation.image_masks[WRIST].float().mean().item()
    assert 0.66 < shown < 0.74  # 70 % kept, 4000 draws
    assert out.observation.image_masks[cams[0]].all()  # not named: untouched
    assert torch.equal(out.observation.image_masks[cams[2]], b.observation.image_masks[cams[2]])
    assert b.observation.image_masks[WRIST].all()  # the input batch is not modified
    assert out.actions is b.actions and out.observation.images is b.observation.images
    torch.manual_seed(0)
    again = drop_cameras(b, {WRIST: 0.3})
    assert torch.equal(again.observation.image_masks[WRIST], out.observation.image_masks[WRIST])  # global RNG


def test_a_dropped_camera_no_longer_affects_the_losses():
    policy = tiny_policy("pi05_tiny").eval()
    b = batch(policy.spec, 3)
    torch.manual_seed(1)
    dropped = drop_cameras(b, {WRIST: 0.999999})
    assert not dropped.observation.image_masks[WRIST].any()
    changed = drop_cameras(b, {})
    changed.observation.images = dict(b.observation.images)
    changed.observation.images[WRIST] = 255 - b.observation.images[WRIST]
    changed.observation.image_masks = dropped.observation.image_masks

    def losses(x):
        torch.manual_seed(5)  # the same flow noise and time for both
        with torch.no_grad():
            return {k: v.item() for k, v in policy.compute_loss(x).items()}

    assert losses(changed) == pytest.approx(losses(dropped), abs=1e-6)
    shown = drop_cameras(b, {})
    shown_changed = drop_cameras(changed, {})
    shown_changed.observation.image_masks = shown.observation.image_masks
    assert losses(shown_changed) != pytest.approx(losses(shown), abs=1e-6)  # when shown, the pixels matter


@pytest.mark.parametrize("value, message", [
    ("{wrst: 0.5}", "not in model.cameras"),
    ("{overhead: 0.5, wrist: 0.5}", "at least one camera"),
    ("{wrist: 1.0}", r"\[0, 1\)"),
])
def test_camera_dropout_is_validated_against_the_model(value, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("pi05_tabletop", [f"train.camera_dropout={value}"])
