"""train.init: start a run from another policy's weights, refusing anything that does not fit."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_model

from tests.unit._doubles import tiny_policy
from vlakit.policy_io import PolicyLoadError, init_weights
from vlakit.recipe.train_spec import InitSpec


def _differs(a: torch.nn.Module, b: torch.nn.Module, prefix: str) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[n], sb[n]) for n in sa if n.startswith(prefix))


def test_init_copies_selected_parts_and_leaves_the_rest(tmp_path):
    source, target = tiny_policy(seed=1), tiny_policy(seed=2)
    save_model(source, str(tmp_path / "model.safetensors"))
    assert _differs(source, target, "vision.") and _differs(source, target, "language.")
    names = init_weights(target, path=tmp_path, include=["vision."])  # a policy folder
    assert names and all(n.startswith("vision.") for n in names)
    assert not _differs(source, target, "vision.") and _differs(source, target, "language.")
    # a file path works too, and exclude keeps a sub-tree fresh
    init_weights(target, path=tmp_path / "model.safetensors", include=["language."],
                 exclude=["language.experts.1."])
    assert not _differs(source, target, "language.experts.0.")
    assert _differs(source, target, "language.experts.1.")


def test_init_refuses_missing_files_tensors_and_shape_mismatches(tmp_path):
    target = tiny_policy()
    with pytest.raises(PolicyLoadError, match="does not exist"):
        init_weights(target, path=tmp_path / "nope", include=["vision."])
    with pytest.raises(PolicyLoadError, match="no policy tensor starts with"):
        init_weights(target, path=tmp_path, include=["visoin."])
    partial = {n: t for n, t in target.state_dict().items() if n.startswith("vision.")}
    from safetensors.torch import save_file

    save_file({n: t.contiguous() for n, t in partial.items()}, str(tmp_path / "vision_only.safetensors"))
    with pytest.raises(PolicyLoadError, match="lacks"):
        init_weights(target, path=tmp_path / "vision_only.safetensors", include=["language."])
    name = next(iter(partial))
    save_file({name: torch.zeros(3, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(PolicyLoadError, match="shapes differ") as err:
        init_weights(target, path=tmp_path / "bad.safetensors", include=[name])
    assert name in str(err.value)


def test_init_spec_defaults_select_the_vlm():
    spec = InitSpec(path="x")
    assert spec.include == ["vision.", "language."] and spec.exclude == []
