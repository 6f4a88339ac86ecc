"""flow_matching.noise_samples: k noise/time draws per robot sample over one shared prefix pass."""

from __future__ import annotations

import pytest
import torch

try:  # one_thread is an autouse fixture
    from ._doubles import batch, one_thread, tiny_policy
except ImportError:  # run as a rootdir module
    from _doubles import batch, one_thread, tiny_policy  # type: ignore[no-redef]  # noqa: F401
from vlakit.nn.segments import Segment
from vlakit.policy import PolicyInputError, _visible_to
from vlakit.recipe.errors import RecipeError

FLOW = "flow_matching"


def _mixed_batch(policy, n=3):
    """n samples, the last one without actions (a VQA-style sample)."""
    b = batch(policy.spec, n, targets=["grasp", "lift", "what colour is the block? red"][:n])
    b.has_actions[n - 1] = False
    return b


def _losses_and_grads(policy, b, losses, seed=7):
    policy.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = policy.compute_loss(b, losses=losses)
    out[FLOW].backward()
    grads = {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads


@pytest.mark.parametrize("losses", [[FLOW], [FLOW, "fast_autoregressive", "text"]])
def test_k_draws_equal_the_joint_pass_over_the_repeated_robot_samples(losses):
    """With k = 2 the flow loss and its gradients are those of the openpi joint pass (k = 1) on a batch
    that holds each robot sample twice: the cached prefix and the masking of cached tokens the
    expert may not see (the FAST tokens, when co-trained) reproduce the joint attention exactly."""
    policy = tiny_policy("pi05_tiny")
    b = _mixed_batch(policy)
    rows = torch.nonzero(b.has_actions).flatten().repeat_interleave(2)
    joint, joint_grads = _losses_and_grads(policy, b.take(rows), losses)
    policy.heads[FLOW].samples_per_observation = 2
    repeated, repeated_grads = _losses_and_grads(policy, b, losses)
    assert torch.allclose(repeated[FLOW], joint[FLOW], atol=1e-6), (repeated[FLOW], joint[FLOW])
    if losses == [FLOW]:
        # a parameter outside the repeated pass's graph (expert 0's last queries) has no gradient there
        # and an exactly zero one in the joint pass
        assert len(repeated_grads) > 10
        for name in joint_grads.keys() | repeated_grads.keys():
            g = joint_grads.get(name, torch.zeros(()))
            assert torch.allclose(repeated_grads.get(name, torch.zeros(())), g, atol=1e-5, rtol=1e-4), name
        assert any(n.startswith("vision.") and g.abs().sum() > 0 for n, g in repeated_grads.items())


def test_fast_tokens_stay_hidden_from_the_expert_in_the_repeated_pass():
    """Without the masking the expert would attend the co-trained FAST tokens: changing them then
    changes the flow loss. With it, it does not."""
    policy = tiny_policy("pi05_tiny")
    policy.heads[FLOW].samples_per_observation = 2
    b = _mixed_batch(policy)

    def flow_loss(x):
        torch.manual_seed(3)
        with torch.no_grad():
            return policy.compute_loss(x, losses=[FLOW, "fast_autoregressive"])[FLOW].item()

    other = _mixed_batch(policy)
    other.actions = b.actions.clone()
    other.actions[0, :, 0] += 0.5  # different FAST tokens for sample 0 ...
    base, changed = flow_loss(b), flow_loss(other)
    # ... but also a different flow target, so compare against the joint pass of the same batches
    policy.heads[FLOW].samples_per_observation = 1
    rows = torch.nonzero(b.has_actions).flatten().repeat_interleave(2)
    assert base == pytest.approx(flow_loss(b.take(rows)), abs=1e-6)
    assert changed == pytest.approx(flow_loss(other.take(rows)), abs=1e-6)


def test_each_copy_draws_its_own_noise_and_time_and_only_robot_samples_run():
    policy = tiny_policy("pi05_tiny", "model.heads.flow_matching.noise_samples=3")
    head = policy.heads[FLOW]
    assert head.samples_per_observation == 3
    seen = []
    original = head.prepare
    head.prepare = lambda inputs: seen.append(out := original(inputs)) or out
    b = _mixed_batch(policy)
    loss = policy.compute_loss(b, losses=[FLOW, "text"])[FLOW]
    assert torch.isfinite(loss)
    (prepared,) = seen
    target = prepared.aux["target"]  # noise - actions, [2 robot samples x 3, H, A]
    assert target.shape[0] == 6
    for row in (0, 3):
        copies = target[row:row + 3]
        assert not torch.allclose(copies[0], copies[1]) and not torch.allclose(copies[1], copies[2])


def test_a_batch_without_actions_gives_a_zero_that_keeps_the_graph():
    policy = tiny_policy("pi05_tiny")
    policy.heads[FLOW].samples_per_observation = 2
    b = _mixed_batch(policy, 2)
    b.has_actions[:] = False
    out = policy.compute_loss(b, losses=[FLOW, "text"])
    assert out[FLOW].item() == 0.0 and out[FLOW].requires_grad
    (out[FLOW] + out["text"]).backward()


def test_noise_samples_is_validated():
    with pytest.raises(RecipeError, match="noise_samples"):
        tiny_policy("pi05_tiny", "model.heads.flow_matching.noise_samples=0")


def test_a_segment_hidden_from_only_some_of_the_heads_segments_is_refused():
    def seg(name, n, expert=0, **kw):
        return Segment(name, torch.zeros(1, n, 4), torch.ones(1, n, dtype=torch.bool), expert=expert,
                       attention="block", **kw)

    keys = [seg("prompt", 3), seg("fast", 2, visibility="own_expert"), seg("secret", 1, hidden_from=("state",))]
    with pytest.raises(PolicyInputError, match="'secret'.*noise_samples: 1"):
        _visible_to(keys, [seg("state", 1, expert=1), seg("actions", 2, expert=1)], head="h")
    visible = _visible_to(keys[:2], [seg("state", 1, expert=1), seg("actions", 2, expert=1)], head="h")
    assert visible.tolist() == [True, True, True, False, False]
