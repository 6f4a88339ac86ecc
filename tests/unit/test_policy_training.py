"""Training behaviour of the assembled policy: named losses, gradient reach, knowledge insulation,
parameter groups, and overfitting one batch."""

from __future__ import annotations

import pytest
import torch

try:  # one_thread is an autouse fixture
    from ._doubles import batch, observation, one_thread, tiny_policy
except ImportError:  # run as a rootdir module
    from _doubles import batch, observation, one_thread, tiny_policy  # type: ignore[no-redef]  # noqa: F401
from vlakit.policy import PolicyInputError
from vlakit.types import Observation


def test_losses_are_named_and_restricted():
    policy = tiny_policy("pi05_tiny")
    b = batch(policy.spec)
    assert set(policy.compute_loss(b)) == {"flow_matching", "fast_autoregressive", "text"}
    prepared = []
    original = policy.heads["flow_matching"].prepare
    policy.heads["flow_matching"].prepare = lambda inputs: prepared.append(1) or original(inputs)
    out = policy.compute_loss(b, losses=["fast_autoregressive", "text"])  # π0.5 pre-training stage
    assert set(out) == {"fast_autoregressive", "text"} and prepared == []  # the flow head did no work
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
    with pytest.raises(PolicyInputError, match="unknown loss"):
        policy.compute_loss(b, losses=["flow"])


def test_gradient_reaches_every_parameter_in_one_step():
    policy = tiny_policy("pi05_tiny")
    b = batch(policy.spec, 2)
    sum(policy.compute_loss(b).values()).backward()
    assert [n for n, p in policy.named_parameters() if p.grad is None] == []
    zero = [n for n, p in policy.named_parameters() if not p.grad.abs().sum() > 0]
    # The adaRMS modulation weights start at zero, so the time MLP that feeds them gets an exactly
    # zero gradient on the very first step -- and only it. One step later it trains too.
    assert zero and all(n.startswith("heads.flow_matching.time_conditioning.") for n in zero), zero
    torch.optim.SGD(policy.parameters(), lr=1e-2).step()
    policy.zero_grad()
    sum(policy.compute_loss(b).values()).backward()
    assert [n for n, p in policy.named_parameters() if not p.grad.abs().sum() > 0] == []


def test_knowledge_insulation_keeps_flow_gradients_out_of_the_backbone():
    for insulated in (True, False):
        policy = tiny_policy("pi05_tiny", f"model.knowledge_insulation={str(insulated).lower()}")
        policy.compute_loss(batch(policy.spec), losses=["flow_matching"])["flow_matching"].backward()
        groups = policy.trainable_groups()
        reach = {k: sum(float(p.grad.abs().sum()) for p in v if p.grad is not None) for k, v in groups.items()}
        assert reach["expert"] > 0 and reach["heads"] > 0
        if insulated:
            assert reach["language"] == 0 and reach["vision"] == 0
        else:
            assert reach["language"] > 0 and reach["vision"] > 0


def test_trainable_groups_partition_the_parameters():
    policy = tiny_policy("pi0_tiny")
    groups = policy.trainable_groups()
    assert set(groups) == {"vision", "language", "expert", "heads"}
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in policy.parameters()}
    assert any(p is policy.state_encoder.state_proj.weight for p in groups["heads"])


def test_samples_without_actions_do_not_affect_flow_or_fast_losses():
    policy = tiny_policy("pi05_tiny")
    b1 = batch(policy.spec, 3, targets=["grasp", "lift", "what colour is the block? red"])
    b1.has_actions[2] = False
    b2 = batch(policy.spec, 3, targets=["grasp", "lift", "what colour is the block? red"])
    b2.has_actions[2] = False
    b2.actions[2] = torch.rand_like(b2.actions[2])  # garbage where there are no actions
    torch.manual_seed(0)
    l1 = policy.compute_loss(b1)
    torch.manual_seed(0)
    l2 = policy.compute_loss(b2)
    assert torch.equal(l1["fast_autoregressive"], l2["fast_autoregressive"])
    assert torch.allclose(l1["flow_matching"], l2["flow_matching"], atol=1e-6)


def test_tiny_pi05_overfits_one_batch():
    """~15 s single-threaded on a busy 2-core machine (400 AdamW steps)."""
    torch.manual_seed(0)
    policy = tiny_policy("pi05_tiny")
    b = batch(policy.spec, 2)
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    history = []
    for _ in range(400):
        loss = policy.compute_loss(b, losses=["flow_matching"])["flow_matching"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    first, last = sum(history[:10]) / 10, sum(history[-10:]) / 10
    assert last * 10 <= first, (first, last)


def test_prompts_are_padded_to_the_batch_longest_and_padding_does_not_change_outputs():
    """The prompt segment is as long as the batch's longest prompt, not ``max_token_len``; a sample's
    prefix outputs are the same whatever the padding its batch-mates force on it."""
    policy = tiny_policy("pi05_tiny").eval()
    obs = observation(policy.spec, 2)
    obs.prompt = ["lift", "put the blue block in the bowl next to the red block"]
    ids = policy.text_tokenizer.encode(policy.state_encoder.prompt(tasks=obs.prompt, state=obs.state,
                                                                   state_mask=obs.state_mask), add_bos=True)
    lengths = [len(x) for x in ids]
    assert lengths[0] < lengths[1] < policy.spec.max_token_len
    prompt = policy.prefix_segments(obs)[-1]
    assert prompt.name == "prompt" and prompt.embeds.shape[1] == lengths[1]
    assert prompt.valid.sum(dim=1).tolist() == lengths
    alone = Observation(images={c: x[:1] for c, x in obs.images.items()},
                        image_masks={c: x[:1] for c, x in obs.image_masks.items()},
                        state=obs.state[:1], state_mask=obs.state_mask[:1], prompt=obs.prompt[:1])
    with torch.no_grad():
        both = policy.runner.run(policy.prefix_segments(obs)).hidden
        one = policy.runner.run(policy.prefix_segments(alone)).hidden
    assert one["prompt"].shape[1] == lengths[0]
    assert torch.allclose(one["prompt"][0], both["prompt"][0, :lengths[0]], atol=1e-5)
    for cam in policy.spec.cameras:
        assert torch.allclose(one[f"image/{cam}"][0], both[f"image/{cam}"][0], atol=1e-5)
