"""Inference: the KV-cached path equals the uncached reference, the prefix runs once per call,
FAST decoding reports failures per sample."""

from __future__ import annotations

import pytest
import torch

from vlakit.policy import PolicyInputError

try:  # one_thread is an autouse fixture
    from ._doubles import observation, one_thread, tiny_policy
except ImportError:  # run as a rootdir module
    from _doubles import observation, one_thread, tiny_policy  # type: ignore[no-redef]  # noqa: F401


@pytest.mark.parametrize("recipe,overrides", [
    ("pi05_tiny", ()),
    ("pi05_tiny", ("model.inference.predict_subtask=true", "model.inference.max_subtask_tokens=4")),
    ("pi0_tiny", ()),
])
def test_cached_sampling_equals_uncached_reference(recipe, overrides):
    policy = tiny_policy(recipe, *overrides)
    spec = policy.spec
    obs = observation(spec, 2)
    obs.image_masks["right_wrist_0_rgb"][1] = False  # a missing camera is masked, not dropped
    noise = torch.randn(2, spec.horizon, spec.max_action_dim, generator=torch.Generator().manual_seed(5))
    cached = policy.sample_actions(obs, noise=noise)
    reference = policy.sample_actions_uncached(obs, noise=noise)
    assert cached.actions.shape == (2, spec.horizon, spec.max_action_dim)
    assert cached.actions.dtype == torch.float32 and cached.valid.all()
    assert (cached.actions - reference.actions).abs().max() < 1e-5
    assert not torch.allclose(cached.actions, noise, atol=1e-3)  # the steps did move the sample
    if spec.inference.predict_subtask:
        assert cached.subtask == reference.subtask and len(cached.subtask) == 2
    else:
        assert cached.subtask is None


def test_prefix_is_computed_once_and_only_the_expert_runs_per_step():
    policy = tiny_policy("pi05_tiny")
    obs = observation(policy.spec, 2)
    vision_calls, streams_seen = [], []
    policy.vision.register_forward_hook(lambda m, i, o: vision_calls.append(1))
    policy.language.register_forward_pre_hook(
        lambda m, args, kwargs: streams_seen.append([s is not None for s in args[0]]), with_kwargs=True)
    policy.sample_actions(obs, num_steps=4)
    assert len(vision_calls) == 1
    assert streams_seen == [[True, False]] + [[False, True]] * 4
    streams_seen.clear()
    policy.sample_actions_uncached(obs, num_steps=4)
    assert streams_seen == [[True, True]] * 4  # the reference recomputes the prefix every step


def test_num_steps_resolution_recipe_then_argument():
    policy = tiny_policy("pi05_tiny", "model.inference.num_steps=3")
    obs = observation(policy.spec, 1)
    calls = []
    policy.language.register_forward_pre_hook(lambda m, a: calls.append(1))
    policy.sample_actions(obs)
    assert len(calls) == 1 + 3
    calls.clear()
    policy.sample_actions(obs, num_steps=2)
    assert len(calls) == 1 + 2


def test_fast_decoding_cached_equals_uncached_and_reports_undecodable_rows():
    policy = tiny_policy("pi05_tiny", "model.inference.actions_from=fast_autoregressive",
                         "model.heads.fast_autoregressive.max_tokens=6")
    obs = observation(policy.spec, 2)
    cached = policy.sample_actions(obs)
    reference = policy.sample_actions_uncached(obs)
    assert cached.valid.tolist() == reference.valid.tolist()
    assert cached.errors == reference.errors
    assert torch.allclose(cached.actions, reference.actions, equal_nan=True)
    # an untrained model never ends its action sequence within 6 tokens: reported, never zeros
    assert not cached.valid.any()
    assert all("no end-of-sequence within 6" in e for e in cached.errors)
    assert torch.isnan(cached.actions).all()


def test_missing_camera_and_overlong_prompt_are_reported():
    from vlakit.policy import PolicyInputError

    policy = tiny_policy("pi05_tiny")
    obs = observation(policy.spec, 1)
    del obs.images["left_wrist_0_rgb"]
    with pytest.raises(PolicyInputError, match="left_wrist_0_rgb"):
        policy.sample_actions(obs)
    obs = observation(policy.spec, 1)
    obs.prompt = ["pick up the red block " * 20]
    with pytest.raises(PolicyInputError, match="max_token_len=64"):
        policy.sample_actions(obs)


def test_exact_length_fast_decoding_always_yields_a_decodable_chunk():
    """With exact_length (the default) every decoded sequence holds horizon x action_dim DCT
    coefficients, so even an untrained model's chunk decodes; cached and uncached still agree."""
    spec = tiny_policy("pi05_tiny").spec
    n_values = spec.horizon * spec.max_action_dim
    policy = tiny_policy("pi05_tiny", "model.inference.actions_from=fast_autoregressive",
                         f"model.heads.fast_autoregressive.max_tokens={n_values}")
    head = policy.heads["fast_autoregressive"]
    lengths = head.token_lengths()
    assert lengths is not None and lengths[:head.first_action_id].sum() == 0
    obs = observation(policy.spec, 3)
    cached = policy.sample_actions(obs)
    reference = policy.sample_actions_uncached(obs)
    assert cached.valid.all(), cached.errors
    assert torch.isfinite(cached.actions).all()
    assert torch.allclose(cached.actions, reference.actions)
    unconstrained = tiny_policy("pi05_tiny", "model.inference.actions_from=fast_autoregressive",
                                f"model.heads.fast_autoregressive.max_tokens={n_values}",
                                "model.heads.fast_autoregressive.exact_length=false")
    assert not unconstrained.sample_actions(obs).valid.all()  # unconstrained, the untrained model fails


def test_a_given_subtask_conditions_the_actions_like_the_predicted_one():
    policy = tiny_policy("pi05_tiny", "model.inference.predict_subtask=true", "model.inference.max_subtask_tokens=4")
    spec = policy.spec
    obs = observation(spec, 2)
    noise = torch.randn(2, spec.horizon, spec.max_action_dim, generator=torch.Generator().manual_seed(3))
    predicted = policy.sample_actions(obs, noise=noise)
    # teacher-forcing the text greedy decoding produced is the same computation as decoding it
    given = policy.sample_actions(obs, noise=noise, subtask=predicted.subtask)
    assert given.subtask == predicted.subtask
    assert (given.actions - predicted.actions).abs().max() < 1e-5
    other = ["pick up the red cube", "move to the blue ball"]
    assert other != predicted.subtask
    moved = policy.sample_actions(obs, noise=noise, subtask=other)
    assert moved.subtask == other
    assert (moved.actions - predicted.actions).abs().max() > 1e-4  # the actions do read the subtask
    with pytest.raises(PolicyInputError, match="1 subtask texts for a batch of 2"):
        policy.sample_actions(obs, noise=noise, subtask=["only one"])
    plain = tiny_policy("pi05_tiny")
    with pytest.raises(PolicyInputError, match="predict_subtask is false"):
        plain.sample_actions(observation(plain.spec, 1), subtask=["pick up the red cube"])


def test_inference_noise_scale_zero_makes_the_flow_policy_deterministic():
    from vlakit.recipe.errors import RecipeError
    from vlakit.recipe.load import load_recipe

    obs = observation(tiny_policy("pi05_tiny").spec, 2)
    for scale, same in ((1.0, False), (0.0, True)):
        policy = tiny_policy("pi05_tiny", f"model.inference.noise_scale={scale}")
        first, second = policy.sample_actions(obs), policy.sample_actions(obs)
        assert torch.allclose(first.actions, second.actions) == same
    with pytest.raises(RecipeError, match="noise_scale"):
        load_recipe("pi05_tiny", ["model.inference.noise_scale=-0.5"])
