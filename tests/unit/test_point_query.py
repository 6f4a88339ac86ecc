"""model.point_query: a learned query token on the VLM regresses where the subtask happens; its
points are written into the predicted subtask text before the action expert reads it."""

from __future__ import annotations

import pytest
import torch

try:  # one_thread is an autouse fixture
    from ._doubles import batch, observation, one_thread, tiny_policy
except ImportError:  # run as a rootdir module
    from _doubles import batch, observation, one_thread, tiny_policy  # type: ignore[no-redef]  # noqa: F401
from vlakit.components.text.points import fill_points
from vlakit.policy import PolicyInputError
from vlakit.recipe.errors import RecipeError
from vlakit.recipe.load import load_recipe

QUERY = ("model.inference.predict_subtask=true", "model.inference.max_subtask_tokens=4",
         "model.point_query={bins: 10}")


def test_the_query_is_invisible_to_every_other_token():
    """What the query token holds changes no other loss, and their gradients never reach it."""
    policy = tiny_policy("pi05_tiny", *QUERY)
    b = batch(policy.spec, 2)
    others = ["text", "fast_autoregressive", "flow_matching"]
    b.subtask_point = torch.full((2, 4), 0.5)
    torch.manual_seed(0)
    before = policy.compute_loss(b, losses=[*others, "point"])
    sum(before[n] for n in others).backward()
    assert policy.point_query.query.grad is None or not policy.point_query.query.grad.any()
    with torch.no_grad():
        policy.point_query.query.normal_(0, 5.0)
    torch.manual_seed(0)
    after = policy.compute_loss(b, losses=[*others, "point"])
    for name in others:
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["point"], after["point"])  # while the query's own read-out does change


def test_point_loss_reads_known_entries_only_and_trains_the_query():
    policy = tiny_policy("pi05_tiny", *QUERY)
    b = batch(policy.spec, 3)
    assert policy.compute_loss(b, losses=["point"])["point"].item() == 0.0  # no sample has a point
    b.subtask_point = torch.tensor([[0.2, 0.7, float("nan"), float("nan")],
                                    [float("nan")] * 4,
                                    [0.5, 0.5, 0.9, 0.1]])
    loss = policy.compute_loss(b, losses=["point"])["point"]
    loss.backward()
    assert policy.point_query.query.grad.abs().sum() > 0 and policy.point_query.head.weight.grad.abs().sum() > 0
    with torch.no_grad():  # the loss is the mean squared error over the 6 known entries, scaled 4 (p - 0.5)
        seg = policy.prefix_segments(b.observation) + [policy.point_query.segment(3, policy.device)]
        pred = policy.point_query.scaled(policy.runner.run(seg).hidden["point_query"])
        known = torch.isfinite(b.subtask_point)
        expected = (pred[known] - 4 * (b.subtask_point[known] - 0.5)).pow(2).mean()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-4, atol=1e-5)
    b.subtask_point = torch.zeros(3, 2)
    with pytest.raises(PolicyInputError, match="the point query predicts"):
        policy.compute_loss(b, losses=["point"])
    assert any(p is policy.point_query.query for p in policy.trainable_groups()["heads"])


def _set_points(policy, table_xy: list[float]) -> None:
    """Make the query predict ``table_xy`` for every observation (zero weights, bias only)."""
    with torch.no_grad():
        policy.point_query.head.weight.zero_()
        policy.point_query.head.bias.copy_(4 * (torch.tensor(table_xy) - 0.5))


def test_predicted_subtask_gets_the_querys_points_and_the_expert_reads_them(monkeypatch):
    policy = tiny_policy("pi05_tiny", *QUERY)
    spec = policy.spec
    obs = observation(spec, 2)
    noise = torch.randn(2, spec.horizon, spec.max_action_dim, generator=torch.Generator().manual_seed(3))
    _set_points(policy, [0.93, 0.12, 0.05, 0.55])
    decoded = ["push the red cube into the blue zone at 1 1 to 4 4", "move to the green ball at 6 6"]
    monkeypatch.setattr(policy.text_tokenizer, "decode", lambda ids: list(decoded))
    chunk = policy.sample_actions(obs, noise=noise)
    want = ["push the red cube into the blue zone at 9 1 to 0 5", "move to the green ball at 9 1"]
    assert chunk.subtask == want == [fill_points(t, [0.93, 0.12, 0.05, 0.55], 10) for t in decoded]
    torch.testing.assert_close(chunk.points, torch.tensor([[0.93, 0.12, 0.05, 0.55]] * 2), rtol=0, atol=1e-5)
    monkeypatch.undo()
    forced = policy.sample_actions(obs, noise=noise, subtask=want)  # teacher forcing the filled text
    assert (forced.actions - chunk.actions).abs().max() < 1e-5
    unfilled = policy.sample_actions(obs, noise=noise, subtask=decoded)
    assert (unfilled.actions - chunk.actions).abs().max() > 1e-4
    reference = policy.sample_actions_uncached(obs, noise=noise)  # cached == uncached with the query
    cached = policy.sample_actions(obs, noise=noise)
    assert (reference.actions - cached.actions).abs().max() < 1e-5 and reference.subtask == cached.subtask


def test_fill_subtask_false_keeps_the_decoded_text(monkeypatch):
    policy = tiny_policy("pi05_tiny", *QUERY[:2], "model.point_query={bins: 10, fill_subtask: false}")
    _set_points(policy, [0.93, 0.12, 0.05, 0.55])
    monkeypatch.setattr(policy.text_tokenizer, "decode", lambda ids: ["move to the green ball at 6 6"])
    chunk = policy.sample_actions(observation(policy.spec, 1))
    assert chunk.subtask == ["move to the green ball at 6 6"] and chunk.points is not None


def test_fill_points_replaces_object_and_zone_numbers_only():
    assert fill_points("place it in the bin to 3 3", [0.5, 0.5, 0.71, 0.09], 10) == "place it in the bin to 7 0"
    assert fill_points("move to the red cube at 3 5", [1.2, -0.3, 0, 0], 10) == "move to the red cube at 9 0"
    assert fill_points("done", [0.1, 0.1, 0.1, 0.1], 10) == "done"
    assert fill_points("move to 3 cubes at 2 2", [0.0, 0.0, 0, 0], 4) == "move to 3 cubes at 0 0"
    with pytest.raises(ValueError, match="4 values"):
        fill_points("at 1 1", [0.5, 0.5], 10)


def test_recipe_rejects_a_query_grid_that_differs_from_the_datas():
    with pytest.raises(RecipeError, match=r"point_query.bins is 8 .*robot"):
        load_recipe("pi05_tabletop_tiny", ["model.point_query={bins: 8}", "data.sources.robot.subtask_points=10"])
    ok = load_recipe("pi05_tabletop_tiny", ["model.point_query={bins: 10}", "data.sources.robot.subtask_points=10"])
    assert ok.model.point_query.bins == 10
