"""Mask behaviour of the assembled π0.5 sequence, checked through the losses and outputs it drives."""

from __future__ import annotations

import pytest
import torch

try:  # one_thread is an autouse fixture
    from ._doubles import batch, one_thread, tiny_policy
except ImportError:  # run as a rootdir module
    from _doubles import batch, one_thread, tiny_policy  # type: ignore[no-redef]  # noqa: F401


@pytest.fixture(scope="module")
def policy():
    return tiny_policy("pi05_tiny")


def run(policy, b, *, perturb: str | None = None, seed: int = 0):
    """compute_loss with fixed RNG; optionally add noise to one head's segment embeddings.

    Returns (losses, hidden states of every segment)."""
    captured = {}
    original_run = policy.runner.run
    originals = {name: head.prepare for name, head in policy.heads.items()}

    def capture(segments, **kw):
        result = original_run(segments, **kw)
        captured.update(result.hidden)
        return result

    g = torch.Generator().manual_seed(123)  # not the global RNG: the flow head's noise must not move

    def perturbing(name):
        def prepare(inputs):
            prepared = originals[name](inputs)
            for seg in prepared.segments:
                if seg.name == ("fast" if name == "fast_autoregressive" else "actions"):
                    seg.embeds = seg.embeds + torch.randn(seg.embeds.shape, generator=g)
            return prepared
        return prepare

    policy.runner.run = capture
    if perturb is not None:
        policy.heads[perturb].prepare = perturbing(perturb)
    try:
        torch.manual_seed(seed)
        with torch.no_grad():
            losses = policy.compute_loss(b)
    finally:
        policy.runner.run = original_run
        for head in policy.heads.values():
            head.__dict__.pop("prepare", None)
    return losses, captured


def test_perturbing_fast_tokens_leaves_the_flow_loss_unchanged(policy):
    b = batch(policy.spec)
    base, _ = run(policy, b)
    pert, _ = run(policy, b, perturb="fast_autoregressive")
    assert pert["fast_autoregressive"] != base["fast_autoregressive"]  # the perturbation is real
    assert torch.equal(pert["flow_matching"], base["flow_matching"])
    assert torch.equal(pert["text"], base["text"])


def test_perturbing_the_action_chunk_leaves_prefix_text_and_fast_unchanged(policy):
    b = batch(policy.spec)
    base, h0 = run(policy, b)
    pert, h1 = run(policy, b, perturb="flow_matching")
    assert pert["flow_matching"] != base["flow_matching"]
    assert torch.equal(pert["text"], base["text"])
    assert torch.equal(pert["fast_autoregressive"], base["fast_autoregressive"])
    for name in ("image/base_0_rgb", "image/right_wrist_0_rgb"):
        assert torch.equal(h0[name], h1[name]), name
    # padding rows are fully masked (finite garbage that attends everything) and never read
    valid = {"prompt": policy.prefix_segments(b.observation)[-1].valid, "text": policy.target_text_segment(b)[2],
             "fast": policy.heads["fast_autoregressive"].prepare(_inputs(policy, b)).aux["valid"]}
    for name, v in valid.items():
        assert torch.equal(h0[name][v], h1[name][v]), name


def _inputs(policy, b):
    from vlakit.interfaces.action_head import TrainingInputs

    return TrainingInputs(batch=b, embed_tokens=policy.language.embed, state_tokens=None,
                          start_token=policy.text_tokenizer.bos_id, eos_token=policy.text_tokenizer.eos_id)


def test_the_action_expert_sees_the_subtask_text(policy):
    """Positive control for the tests above: a segment the actions may see does change the flow loss."""
    spec = policy.spec
    base, _ = run(policy, batch(spec, targets=["grasp the block", "lift"]))
    other, _ = run(policy, batch(spec, targets=["open the gripper", "lift"]))
    assert other["flow_matching"] != base["flow_matching"]


def test_causal_text_cannot_see_later_tokens(policy):
    spec = policy.spec
    tok = policy.text_tokenizer
    a, b_ = "move to the red block", "move to the red bowl"
    ids_a, ids_b = tok.encode([a, b_])
    common = next(i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y)
    _, h_a = run(policy, batch(spec, targets=[a, "lift"]))
    _, h_b = run(policy, batch(spec, targets=[b_, "lift"]))
    # text segment = [BOS, ids...]; position common + 1 is the first that holds a differing token.
    # (The two sequences differ in length, so matmul blocking may differ in the last bits.)
    assert torch.allclose(h_a["text"][0, :common + 1], h_b["text"][0, :common + 1], atol=1e-5)
    assert (h_a["text"][0, common + 1] - h_b["text"][0, common + 1]).abs().max() > 1e-2
