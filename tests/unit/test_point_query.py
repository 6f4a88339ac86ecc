"""model.point_query: a learned query token on the VLM regresses where the subtask happens; its
points are written into the predicted subtask text before the action expert reads it."""

from __future__ import annotations

import pytest
import torch

try:  # one_thread is an autouse fixture
    from ._doubles import batch, observation, one_thread, tiny_policy
except ImportError:  # run as a rootdir module
    from _doubles import batch, observation, one_thread, tiny_policy  # type: ignore[no-redef]  # noqa: F401
from vlakit.components.text.points import fill_points, point_slots
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
        pred = policy.point_query.scaled(policy.runner.run(seg).hidden)
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


# -- point by asking (model.point_query.ask) ---------------------------------------------------------
ASK = (*QUERY[:2], "model.point_query={bins: 10, ask: {"
       r"object: {find: '\b(?:to|behind) the (\w+ \w+)', question: 'where is the {} at?'}, "
       r"zone: {find: '\b(the \w+ zone)', question: 'where is {} at?'}}}")


def _asked(policy, obs, row: int, question: str) -> torch.Tensor:
    """The query's table point for ``question`` about sample ``row``'s images, without state."""
    one = obs.take(torch.tensor([row]))
    one.prompt = [question]
    one.state_mask = torch.zeros_like(one.state_mask)
    with torch.no_grad():
        seg = policy.prefix_segments(one) + [policy.point_query.segment(1, policy.device)]
        return policy._points(policy.runner.run(seg))[0]


def test_ask_points_asks_for_each_written_slot_by_name_without_state():
    policy = tiny_policy("pi05_tiny", *ASK)
    obs = observation(policy.spec, 3)
    obs.prompt = ["push the red cube into the blue zone", "touch the green ball", "touch the red cube"]
    subtasks = ["move behind the red cube at 1 1 to 4 4", "move to the green ball at 6 6", "done"]
    points = policy.ask_points(obs, subtasks)
    # the object comes from the subtask, the zone (not in "move behind ...") from the task prompt
    torch.testing.assert_close(points[0, :2], _asked(policy, obs, 0, "where is the red cube at?")[:2])
    torch.testing.assert_close(points[0, 2:], _asked(policy, obs, 0, "where is the blue zone at?")[2:])
    torch.testing.assert_close(points[1, :2], _asked(policy, obs, 1, "where is the green ball at?")[:2])
    assert points[1, 2:].isnan().all() and points[2].isnan().all()  # slots the text does not write
    assert not torch.allclose(_asked(policy, obs, 1, "where is the red cube at?"), points[1])  # the name matters
    with torch.no_grad():  # the robot prefix's vision tokens, reused, give the same answers
        tokens = [s.embeds for s in policy.prefix_segments(obs) if s.name.startswith("image/")]
        torch.testing.assert_close(policy.ask_points(obs, subtasks, image_tokens=tokens), points, equal_nan=True)
    moved = observation(policy.spec, 3, state_dims=5)  # same images (same seed), other state
    moved.prompt = obs.prompt
    assert not torch.equal(moved.state, obs.state)
    torch.testing.assert_close(policy.ask_points(moved, subtasks), points, equal_nan=True)


def test_asking_policy_fills_asked_points_and_the_expert_reads_them(monkeypatch):
    policy = tiny_policy("pi05_tiny", *ASK)
    spec = policy.spec
    obs = observation(spec, 2)
    obs.prompt = ["push the red cube into the blue zone", "touch the green ball"]
    noise = torch.randn(2, spec.horizon, spec.max_action_dim, generator=torch.Generator().manual_seed(3))
    _set_points(policy, [0.93, 0.12, 0.05, 0.55])
    decoded = ["move behind the red cube at 1 1 to 4 4", "move to the green ball at 6 6"]
    monkeypatch.setattr(policy.text_tokenizer, "decode", lambda ids: list(decoded))
    chunk = policy.sample_actions(obs, noise=noise)
    assert chunk.subtask == ["move behind the red cube at 9 1 to 0 5", "move to the green ball at 9 1"]
    nan = float("nan")
    torch.testing.assert_close(chunk.points, torch.tensor([[0.93, 0.12, 0.05, 0.55], [0.93, 0.12, nan, nan]]),
                               rtol=0, atol=1e-5, equal_nan=True)
    uncached = policy.sample_actions_uncached(obs, noise=noise)
    monkeypatch.undo()
    assert uncached.subtask == chunk.subtask and (uncached.actions - chunk.actions).abs().max() < 1e-5
    forced = policy.sample_actions(obs, noise=noise, subtask=chunk.subtask)
    assert (forced.actions - chunk.actions).abs().max() < 1e-5


def test_an_asking_query_learns_from_stateless_samples_only():
    policy = tiny_policy("pi05_tiny", *ASK)
    b = batch(policy.spec, 3)
    b.observation.state_mask[1] = False  # sample 1 is a pointing question; 0 and 2 are robot samples
    b.subtask_point = torch.tensor([[0.2, 0.7, 0.1, 0.1], [0.5, 0.5, float("nan"), float("nan")],
                                    [0.9, 0.9, 0.9, 0.9]])
    loss = policy.compute_loss(b, losses=["point"])["point"]
    b.subtask_point[[0, 2]] = 0.0
    assert torch.equal(policy.compute_loss(b, losses=["point"])["point"], loss)
    b.subtask_point[1, 0] = 0.0
    assert not torch.equal(policy.compute_loss(b, losses=["point"])["point"], loss)
    b.observation.state_mask[1] = True  # no stateless sample: nothing to learn from
    assert policy.compute_loss(b, losses=["point"])["point"].item() == 0.0


ZONE = r"{find: '\b(the \w+ zone)', question: 'where is {} at?'}"


@pytest.mark.parametrize(("slot", "match"), [
    ("{find: '(unclosed', question: 'where is {} at?'}", "not a regular expression"),
    (r"{find: '\w+ \w+', question: 'where is {} at?'}", "at least one group"),
    (r"{find: '(\w+) (\w+)', question: 'where is {} at?'}", "exactly 2 '{}'"),
    (r"{find: '(\w+)', question: 'where is it at?'}", "exactly 1 '{}'"),
    (r"{find: '(\w+)', question: 'where is {} at?', when: '(behind'}", "not a regular expression"),
    (r"[]", "lists no question"),
])
def test_recipe_rejects_an_unusable_pointing_question(slot, match):
    with pytest.raises(RecipeError, match=match):
        load_recipe("pi05_tabletop_tiny", [f"model.point_query={{bins: 10, ask: {{object: {slot}, zone: {ZONE}}}}}",
                                           "data.sources.robot.subtask_points=10"])
    with pytest.raises(RecipeError, match="object. and/or .zone"):
        load_recipe("pi05_tabletop_tiny", ["model.point_query={bins: 10, ask: {}}",
                                           "data.sources.robot.subtask_points=10"])


BEHIND = (*QUERY[:2], "model.point_query={bins: 10, ask: {object: ["
          r"{when: '\bbehind\b', find: '(?:push|slide) the (\w+ \w+) into (the \w+ zone)', "
          r"question: 'where is behind the {} to push it into {}?'}, "
          r"{find: '\b(?:to|behind|push) the (\w+ \w+)', question: 'where is the {} at?'}], "
          r"zone: {find: '\b(the \w+ zone)', question: 'where is {} at?'}}}")


def test_a_slot_asks_the_first_question_that_applies():
    """``when`` picks the question by the subtask: "move behind" asks where the push starts, with the
    object and zone names found in the task prompt; "push" asks where the object is."""
    ask = load_recipe("pi05_tabletop_tiny", [*BEHIND, "data.sources.robot.subtask_points=10"]).model.point_query.ask
    task = "slide the red cube into the blue zone"
    assert ask.question("object", "move behind the red cube at 1 1 to 4 4", task) == \
        "where is behind the red cube to push it into the blue zone?"
    assert ask.question("object", "push the red cube into the blue zone at 1 1 to 4 4", task) == \
        "where is the red cube at?"
    # the behind question's names are not found: the next spec asks where the object is
    assert ask.question("object", "move behind the red cube at 1 1", "touch it") == "where is the red cube at?"
    assert ask.question("zone", "move behind the red cube at 1 1 to 4 4", task) == "where is the blue zone at?"
    assert ask.question("zone", "move to the red cube at 1 1", "touch the red cube") is None
    from vlakit.recipe.model_spec import PointSlotSpec

    either = PointSlotSpec(find=r"(red) cube|(blue) cube", question="where are {} and {}?")
    assert either.ask("move to the red cube", "") is None  # a group that took no part: not asked

    policy = tiny_policy("pi05_tiny", *BEHIND)
    obs = observation(policy.spec, 1)
    obs.prompt = [task]
    points = policy.ask_points(obs, ["move behind the red cube at 1 1 to 4 4"])
    torch.testing.assert_close(points[0, :2], _asked(policy, obs, 0, ask.question(
        "object", "move behind the red cube", task))[:2])
    assert not torch.allclose(points[0, :2], _asked(policy, obs, 0, "where is the red cube at?")[:2])


def test_fill_points_keeps_the_numbers_of_slots_without_a_point():
    nan = float("nan")
    assert fill_points("push it at 1 1 to 4 4", [0.93, 0.12, nan, nan], 10) == "push it at 9 1 to 4 4"
    assert point_slots("push it at 1 1 to 4 4") == {"object", "zone"}
    assert point_slots("place it in the bin to 3 3") == {"zone"} and point_slots("done") == set()


@pytest.mark.parametrize("recipe_set", [QUERY, ASK], ids=["reads-prompt", "asks"])
def test_decoding_sees_the_positions_training_saw(recipe_set, monkeypatch):
    """The first decoded token's scores at inference equal the training pass's at the same place:
    the query token holds a position in both (an asking policy once dropped it at inference, and
    its subtask text came out garbled)."""
    policy = tiny_policy("pi05_tiny", *recipe_set)
    b = batch(policy.spec, 2)
    seen: list[torch.Tensor] = []
    real = policy.language.logits
    monkeypatch.setattr(policy.language, "logits", lambda h: seen.append(real(h).detach()) or seen[-1])
    policy.compute_loss(b, losses=["text"])
    trained = seen[-1][:, 0]  # scores after BOS: [B, V]
    seen.clear()
    policy.sample_actions(b.observation)
    first = seen[0]
    assert first.shape == trained.shape
    torch.testing.assert_close(first, trained, rtol=1e-4, atol=1e-4)


POINTER = ("model.inference.predict_subtask=true", "model.inference.max_subtask_tokens=4",
           "model.point_query={bins: 10, pointer: base_0_rgb}")


def test_pointer_reads_the_scored_tokens_cell_positions():
    """With ``pointer`` each slot's point is the scored mean of the camera's token cells (row-major,
    row 0 at the table's far side) plus the tokens' offsets: a token that takes all the score gives
    its own cell; equal scores give the grid's centre."""
    from vlakit.nn.point_regression import to_table
    from vlakit.policy import PointQuery

    pq = PointQuery(8, pointer="cam", num_tokens=16, key_dim=4)
    image = torch.zeros(1, 16, 8)
    image[0, 6, 0] = 1.0  # token 6: row 1, column 2
    image[0, 13, 1] = 1.0  # token 13: row 3, column 1
    query = torch.zeros(1, 1, 8)
    query[0, 0, 2] = 1.0
    with torch.no_grad():
        pq.k_proj.weight.zero_()
        pq.k_proj.bias.zero_()
        pq.q_proj.weight.zero_()
        pq.q_proj.bias.zero_()
        uniform = to_table(pq.scaled({"point_query": query, "image/cam": image}))
        pq.k_proj.weight[0, 0] = 1.0  # key 0 <- feature 0 (token 6), key 1 <- feature 1 (token 13)
        pq.k_proj.weight[1, 1] = 1.0
        pq.q_proj.weight[0, 2] = 200.0  # object slot asks key 0, zone slot (keys 4..7) asks key 1
        pq.q_proj.weight[5, 2] = 200.0
        picked = to_table(pq.scaled({"point_query": query, "image/cam": image}))
    torch.testing.assert_close(uniform, torch.full((1, 4), 0.5))
    torch.testing.assert_close(picked, torch.tensor([[0.625, 0.625, 0.375, 0.125]]), atol=1e-4, rtol=0)
    with torch.no_grad():  # a token's offset moves the point it gives
        pq.offset.bias.fill_(0.4)
        moved = to_table(pq.scaled({"point_query": query, "image/cam": image}))
    torch.testing.assert_close(moved, picked + 0.1, atol=1e-4, rtol=0)
    pq.to(torch.bfloat16)  # bf16-true weights and hidden states: the read-out runs and gives float32
    with torch.no_grad():
        low = to_table(pq.scaled({"point_query": query.bfloat16(), "image/cam": image.bfloat16()}))
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, moved, atol=2e-2, rtol=0)


def test_pointer_trains_from_the_point_loss():
    policy = tiny_policy("pi05_tiny", *POINTER)
    assert not hasattr(policy.point_query, "head")
    b = batch(policy.spec, 2)
    b.subtask_point = torch.tensor([[0.2, 0.7, float("nan"), float("nan")], [0.5, 0.5, 0.9, 0.1]])
    policy.compute_loss(b, losses=["point"])["point"].backward()
    pq = policy.point_query
    for name in ("query", "q_proj.weight", "k_proj.weight", "offset.weight", "cells"):
        grad = pq.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.vision.parameters())


def test_pointer_camera_must_be_a_model_camera():
    with pytest.raises(RecipeError, match="point_query.pointer 'overhead' is not one of model.cameras"):
        load_recipe("pi05_tiny", ["model.point_query={bins: 10, pointer: overhead}"])
    from vlakit.policy import PointQuery

    with pytest.raises(ValueError, match="square grid"):
        PointQuery(8, pointer="cam", num_tokens=12)


@pytest.mark.parametrize("reads", [False, True])
def test_with_point_input_the_expert_reads_the_asked_point_before_rounding(monkeypatch, reads):
    """Two answers in the same grid cell write the same subtask text; only an expert that reads the
    point itself (``flow_matching.point_input``) acts differently on them."""
    extra = ["model.heads.flow_matching.point_input=true"] if reads else []
    policy = tiny_policy("pi05_tiny", *ASK, *extra)
    spec = policy.spec
    obs = observation(spec, 2)
    obs.prompt = ["push the red cube into the blue zone", "touch the green ball"]
    noise = torch.randn(2, spec.horizon, spec.max_action_dim, generator=torch.Generator().manual_seed(3))
    decoded = ["move behind the red cube at 1 1 to 4 4", "move to the green ball at 6 6"]
    monkeypatch.setattr(policy.text_tokenizer, "decode", lambda ids: list(decoded))
    _set_points(policy, [0.91, 0.12, 0.05, 0.55])
    first = policy.sample_actions(obs, noise=noise)
    _set_points(policy, [0.98, 0.17, 0.02, 0.58])
    second = policy.sample_actions(obs, noise=noise)
    assert first.subtask == second.subtask  # the same cells
    assert torch.allclose(first.actions, second.actions, atol=1e-6) != reads
    uncached = policy.sample_actions_uncached(obs, noise=noise)
    monkeypatch.undo()
    assert (uncached.actions - second.actions).abs().max() < 1e-5
    forced = policy.sample_actions(obs, noise=noise, subtask=second.subtask)  # a given subtask's points are asked
    assert (forced.actions - second.actions).abs().max() < 1e-5


def test_point_input_needs_a_point_query():
    with pytest.raises(RecipeError, match="point_input"):
        load_recipe("pi05_tiny", ["model.heads.flow_matching.point_input=true"])
    with pytest.raises(RecipeError, match="predict_subtask"):  # asking needs a predicted subtask
        load_recipe("pi05_tiny", [*ASK, "model.heads.flow_matching.point_input=true",
                                  "model.inference.predict_subtask=false"])
    policy = tiny_policy("pi05_tiny", *QUERY, "model.heads.flow_matching.point_input=true")
    b = batch(policy.spec, 2)
    b.subtask_point = torch.tensor([[0.2, 0.7, 0.4, 0.4], [0.5, 0.5, float("nan"), float("nan")]])
    policy.compute_loss(b, losses=["flow_matching"])["flow_matching"].backward()
    proj = policy.heads["flow_matching"].point_in_proj
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    b.subtask_point = None
    with pytest.raises(ValueError, match="point_input"):
        policy.compute_loss(b, losses=["flow_matching"])
