"""Action heads: flow-matching convention, loss masks and Euler sampling; FAST id mapping, vocabulary
checks and constrained greedy decoding."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from vlakit.components.action_heads.flow_matching import sample_time
from vlakit.interfaces.action_head import HeadContext, InferenceInputs, TrainingInputs
from vlakit.nn.decoding import greedy_decode
from vlakit.registry import ACTION_HEADS


def flow_head(loss_mask: str = "masked", time_conditioning: str = "adarms", **options):
    cfg = ACTION_HEADS.config_class("flow_matching")(expert="tiny_expert", loss_mask=loss_mask,
                                                      time_conditioning={"type": time_conditioning}, **options)
    ctx = HeadContext(horizon=4, action_dim=3, vocab_size=10, backbone_width=8, expert_index=1, expert_width=8,
                      text_tokenizer=None, action_tokenizer=None)
    torch.manual_seed(0)
    return cfg.build(context=ctx)


def training_inputs(b: int = 2, h: int = 4, a: int = 3) -> TrainingInputs:
    batch = SimpleNamespace(actions=torch.rand(b, h, a) * 2 - 1, has_actions=torch.ones(b, dtype=torch.bool),
                            action_is_pad=torch.zeros(b, h, dtype=torch.bool),
                            action_dim_mask=torch.ones(b, a, dtype=torch.bool), batch_size=b, subtask_point=None)
    return TrainingInputs(batch=batch, embed_tokens=None, state_tokens=None, start_token=1, eos_token=2)


def test_time_distribution_is_scaled_beta():
    torch.manual_seed(0)
    t = sample_time(20000)
    assert t.min() >= 0.001 and t.max() <= 1.0
    assert abs(float(t.mean()) - (0.6 * 0.999 + 0.001)) < 0.01  # Beta(1.5, 1) has mean 0.6
    assert float((t < 0.5).float().mean()) == pytest.approx(0.5 ** 1.5, abs=0.01)  # CDF t^1.5


def test_time_beta_sets_the_training_time_distribution():
    torch.manual_seed(0)
    t = sample_time(20000, time_beta=(5.0, 1.0))
    assert float((t < 0.9).float().mean()) == pytest.approx(0.9 ** 5, abs=0.01)  # CDF t^5 (openpi's: t^1.5)
    cfg = ACTION_HEADS.config_class("flow_matching")
    assert cfg().time_beta == (1.5, 1.0)  # openpi
    with pytest.raises(ValueError, match="time_beta"):
        cfg(time_beta=(0.0, 1.0))


def test_flow_head_draws_times_from_its_time_beta():
    head = flow_head(time_beta=[20, 1])  # nearly all mass near t = 1: x_t is almost pure noise
    inputs = training_inputs(b=64)
    torch.manual_seed(5)
    prepared = head.prepare(inputs)
    torch.manual_seed(5)
    noise = torch.randn_like(inputs.batch.actions)
    t = sample_time(64, time_beta=(20.0, 1.0))
    x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * inputs.batch.actions
    assert torch.allclose(prepared.segments[-1].embeds, head.action_in_proj(x_t), atol=1e-6)
    assert float(t.mean()) > 0.9


def test_flow_training_uses_noise_at_t_one_convention():
    head = flow_head()
    inputs = training_inputs()
    torch.manual_seed(3)
    prepared = head.prepare(inputs)
    torch.manual_seed(3)
    noise = torch.randn_like(inputs.batch.actions)
    t = sample_time(2)
    x_t = t[:, None, None] * noise + (1 - t[:, None, None]) * inputs.batch.actions
    assert torch.allclose(prepared.aux["target"], noise - inputs.batch.actions)
    assert torch.allclose(prepared.segments[-1].embeds, head.action_in_proj(x_t), atol=1e-6)
    assert set(prepared.conds) == {1} and prepared.conds[1].shape == (2, 8)


def test_flow_loss_masks_pad_dims_timesteps_and_actionless_samples():
    inputs = training_inputs(b=3)
    batch = inputs.batch
    batch.action_is_pad[0, 3] = True
    batch.action_dim_mask[:, 2] = False
    batch.has_actions[2] = False
    hidden = {"actions": torch.randn(3, 4, 8)}
    head = flow_head("masked")
    prepared = SimpleNamespace(aux={"target": torch.randn(3, 4, 3)})
    err = (head.action_out_proj(hidden["actions"]) - prepared.aux["target"]).pow(2)
    keep = torch.ones(3, 4, 3, dtype=torch.bool)
    keep[0, 3] = False
    keep[:, :, 2] = False
    keep[2] = False
    loss = head.loss(inputs=inputs, prepared=prepared, hidden=hidden)
    assert torch.allclose(loss, err[keep].mean())
    unmasked = flow_head("openpi_unmasked").loss(inputs=inputs, prepared=prepared, hidden=hidden)
    assert torch.allclose(unmasked, err[:2].mean())  # every dim and timestep of samples with actions
    batch.has_actions[:] = False
    empty = head.loss(inputs=inputs, prepared=prepared, hidden=hidden)
    assert empty.item() == 0.0 and empty.requires_grad


def test_point_loss_regresses_the_subtask_point_from_the_action_tokens_where_there_is_one():
    inputs = training_inputs(b=3)
    batch = inputs.batch
    batch.has_actions[2] = False
    nan = float("nan")
    batch.subtask_point = torch.tensor([[0.2, 0.7, nan, nan], [0.5, 0.1, 0.9, 0.3], [0.4, 0.4, 0.4, 0.4]])
    hidden = {"actions": torch.randn(3, 4, 8)}
    prepared = SimpleNamespace(aux={"target": torch.randn(3, 4, 3)})
    plain = flow_head().loss(inputs=inputs, prepared=prepared, hidden=hidden)
    head = flow_head(point_weight=0.5)
    pred = head.point_proj(hidden["actions"].mean(1))
    target = 4 * (batch.subtask_point - 0.5)
    known = torch.tensor([[True, True, False, False], [True, True, True, True], [False] * 4])
    expected = (pred - target)[known].pow(2).mean()
    assert torch.allclose(head.point_loss(batch, hidden["actions"]), expected)
    # the flow part is the same function of the same weights: the total adds the weighted point loss
    head.action_out_proj.load_state_dict(flow_head().action_out_proj.state_dict())
    total = head.loss(inputs=inputs, prepared=prepared, hidden=hidden)
    assert torch.allclose(total, plain + 0.5 * expected)
    assert "point_proj.weight" not in flow_head().state_dict()  # weight 0: openpi's parameters only
    batch.subtask_point = None
    with pytest.raises(ValueError, match="subtask points"):
        head.loss(inputs=inputs, prepared=prepared, hidden=hidden)
    with pytest.raises(ValueError, match="point_weight"):
        ACTION_HEADS.config_class("flow_matching")(point_weight=-1.0)


def test_point_loss_reads_only_samples_drawn_at_pure_noise():
    """At t < 1 the noisy chunk gives the action (and with the state, the point) away: the point loss
    reads only the ``point_share`` of samples the head draws at t = 1, where x_t is the noise."""
    head = flow_head(point_weight=1.0, point_share=0.5)
    inputs = training_inputs(b=400)
    inputs.batch.subtask_point = torch.rand(400, 4)
    torch.manual_seed(7)
    prepared = head.prepare(inputs)
    rows = prepared.aux["at_noise"]
    assert 0.4 < float(rows.float().mean()) < 0.6
    torch.manual_seed(7)
    noise = torch.randn_like(inputs.batch.actions)
    # rows at t = 1 embed the noise itself (the first Euler step's input)
    assert torch.allclose(prepared.segments[-1].embeds[rows], head.action_in_proj(noise[rows]), atol=1e-6)
    assert not torch.allclose(prepared.segments[-1].embeds[~rows], head.action_in_proj(noise[~rows]), atol=1e-3)
    hidden = torch.randn(400, 4, 8)
    err = (head.point_proj(hidden.mean(1)) - 4 * (inputs.batch.subtask_point - 0.5)).pow(2)
    assert torch.allclose(head.point_loss(inputs.batch, hidden, rows=rows), err[rows].mean())
    assert torch.allclose(head.point_loss(inputs.batch, hidden), err.mean())
    with pytest.raises(ValueError, match="point_share"):
        ACTION_HEADS.config_class("flow_matching")(point_share=0.0)


class _RecordingRunner:
    """Stands in for the backbone: returns zeros for the action tokens and records the times seen."""

    def __init__(self, head) -> None:
        self.calls = 0
        self.head = head

    def run(self, segments, *, context=None, conds=None):
        self.calls += 1
        return SimpleNamespace(hidden={s.name: torch.zeros_like(s.embeds) for s in segments})


def test_euler_sampling_integrates_from_noise_at_t1_to_t0():
    head = flow_head(time_conditioning="concat_mlp")
    with torch.no_grad():
        head.action_out_proj.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    runner = _RecordingRunner(head)
    noise = torch.randn(2, 4, 3)
    inputs = InferenceInputs(runner=runner, context=None, state_tokens=None, batch_size=2, start_token=1,
                             eos_token=2, embed_tokens=None, logits=None)
    chunk = head.sample(inputs, noise=noise, num_steps=7)
    assert runner.calls == 7
    # zero hidden -> velocity = bias; 7 steps of dt = -1/7 move x by exactly -bias
    assert torch.allclose(chunk.actions, noise - torch.tensor([0.5, -1.0, 2.0]), atol=1e-5)
    assert chunk.valid.all() and chunk.errors == [None, None]
    with pytest.raises(ValueError, match="noise must be"):
        head.sample(inputs, noise=torch.zeros(2, 5, 3))


def test_action_prediction_regresses_the_actions_and_samples_to_the_prediction():
    head = flow_head(time_conditioning="concat_mlp", prediction="actions")
    inputs = training_inputs()
    assert torch.equal(head.prepare(inputs).aux["target"], inputs.batch.actions.float())
    assert flow_head().prepare(inputs).aux["target"].ne(inputs.batch.actions).any()  # velocity: noise - a
    predicted = torch.tensor([0.5, -1.0, 2.0])
    with torch.no_grad():
        head.action_out_proj.bias.copy_(predicted)  # zero hidden -> the expert predicts these actions
    runner = _RecordingRunner(head)
    inputs = InferenceInputs(runner=runner, context=None, state_tokens=None, batch_size=2, start_token=1,
                             eos_token=2, embed_tokens=None, logits=None)
    for steps in (1, 7):
        # velocity (x_t - a) / t: each Euler step moves x straight towards a and the last lands on it
        chunk = head.sample(inputs, noise=torch.randn(2, 4, 3), num_steps=steps)
        assert torch.allclose(chunk.actions, predicted.expand(2, 4, 3), atol=1e-5)
    with pytest.raises(ValueError, match="prediction"):
        flow_head(prediction="noise")


def test_noise_correlation_shares_noise_along_the_chunk_in_training_and_sampling():
    head = flow_head(noise_correlation=0.8)
    torch.manual_seed(0)
    noise = head.noise((4000, 4, 3), device="cpu")
    assert float(noise.std()) == pytest.approx(1.0, abs=0.02)  # still standard normal per value
    steps = noise.permute(1, 0, 2).reshape(4, -1)
    corr = torch.corrcoef(steps)[~torch.eye(4, dtype=torch.bool)]
    assert torch.allclose(corr, torch.full_like(corr, 0.8 ** 2), atol=0.03)  # rho^2 between two steps
    plain = flow_head()
    torch.manual_seed(1)
    independent = plain.noise((2, 4, 3), device="cpu")
    torch.manual_seed(1)
    assert torch.equal(independent, torch.randn(2, 4, 3))  # 0: openpi's draw, same random stream

    calls = []
    real = head.noise
    head.noise = lambda shape, device: calls.append(shape) or real(shape, device=device)
    head.prepare(training_inputs())
    runner = _RecordingRunner(head)
    head.sample(InferenceInputs(runner=runner, context=None, state_tokens=None, batch_size=2, start_token=1,
                                eos_token=2, embed_tokens=None, logits=None), num_steps=2)
    assert calls == [(2, 4, 3), (2, 4, 3)]
    with pytest.raises(ValueError, match="noise_correlation"):
        flow_head(noise_correlation=1.0)


def test_fast_code_map_is_its_own_inverse_and_vocab_checks_name_the_conflict():
    cfg = ACTION_HEADS.config_class("fast_autoregressive")(reserved_tail=128)
    assert cfg.action_id_range(vocab_size=257_152, action_vocab_size=2048) == (254_976, 257_023)
    assert cfg.check_vocab(vocab_size=257_152, text_vocab_size=735, action_vocab_size=2048) is None
    assert "overlap" in cfg.check_vocab(vocab_size=3000, text_vocab_size=1000, action_vocab_size=2048)
    assert "do not fit" in cfg.check_vocab(vocab_size=1000, text_vocab_size=10, action_vocab_size=2048)
    assert "needs an action tokenizer" in cfg.check_vocab(vocab_size=10, text_vocab_size=5, action_vocab_size=None)
    tok = SimpleNamespace(vocab_size=20)
    head = cfg.build(context=HeadContext(horizon=2, action_dim=2, vocab_size=200, backbone_width=8, expert_index=0,
                                         expert_width=8, text_tokenizer=None, action_tokenizer=tok))
    ids = head.codes_to_ids([0, 5, 19])
    assert ids == [71, 66, 52] and head.ids_to_codes(ids) == [0, 5, 19]


class _ScriptedLM:
    """Logits that prefer a disallowed id, then action ids, then EOS for row 0 at step 2."""

    def __init__(self, eos_rows: tuple[int, ...] = (0,)) -> None:
        self.step = 0
        self.calls = 0
        self.eos_rows = list(eos_rows)

    def run(self, segments, *, context=None, conds=None):
        self.calls += 1
        return SimpleNamespace(hidden={s.name: s.embeds for s in segments}, context=lambda: context)

    def logits(self, hidden):
        b = hidden.shape[0]
        scores = torch.zeros(b, 10)
        scores[:, 0] = 100.0  # disallowed: must never be chosen
        scores[:, 7] = 50.0
        if self.step == 2:
            scores[self.eos_rows, 2] = 80.0  # EOS for these rows
        self.step += 1
        return scores


def test_greedy_decode_is_constrained_and_stops_rows_at_eos():
    lm = _ScriptedLM()
    allowed = torch.zeros(10, dtype=torch.bool)
    allowed[5:9] = True
    out = greedy_decode(runner=lm, context=None, embed_tokens=lambda ids: ids[..., None].float(), logits=lm.logits,
                        start_token=1, eos_token=2, allowed=allowed, max_tokens=4, name="t", batch_size=2)
    assert out.ids == [[7, 7], [7, 7, 7, 7]]
    assert out.finished.tolist() == [True, False]
    assert lm.calls == 5  # max_tokens + 1: the last step can only add EOS


def test_greedy_decode_stops_early_when_every_row_ended():
    lm = _ScriptedLM(eos_rows=(0, 1))
    out = greedy_decode(runner=lm, context=None, embed_tokens=lambda ids: ids[..., None].float(), logits=lm.logits,
                        start_token=1, eos_token=2, allowed=torch.arange(10) > 0, max_tokens=50,
                        name="t", batch_size=2)
    assert out.finished.all() and lm.calls == 3 and out.ids == [[7, 7], [7, 7]]


def test_point_input_adds_a_point_token_the_expert_reads_in_training_and_sampling():
    """``point_input``: one expert token from the scaled subtask point and its known-flags, before the
    actions; training reads the batch's points (noised by ``point_input_noise``), sampling the
    inputs' points."""
    head = flow_head(point_input=True)
    assert "point_in_proj.weight" in head.state_dict() and "point_in_proj.weight" not in flow_head().state_dict()
    inputs = training_inputs(b=2)
    nan = float("nan")
    inputs.batch.subtask_point = torch.tensor([[0.2, 0.7, nan, nan], [0.5, 0.1, 0.9, 0.3]])
    names = [s.name for s in head.prepare(inputs).segments]
    assert names == ["point", "actions"]
    token = head.prepare(inputs).segments[0].embeds
    feats = torch.tensor([[4 * (0.2 - 0.5), 4 * (0.7 - 0.5), 0, 0, 1, 1, 0, 0],
                          [0.0, 4 * (0.1 - 0.5), 4 * (0.9 - 0.5), 4 * (0.3 - 0.5), 1, 1, 1, 1]])
    torch.testing.assert_close(token, head.point_in_proj(feats)[:, None])
    # noise moves the known coordinates only; unknown ones stay unknown (zero value, flag 0)
    noisy = flow_head(point_input=True, point_input_noise=0.05)
    seen = []
    original = noisy.point_token
    noisy.point_token = lambda points: seen.append(points) or original(points)
    noisy.prepare(inputs)
    moved = seen[0] - inputs.batch.subtask_point
    assert moved[0, :2].abs().min() > 0 and moved[1].abs().min() > 0
    assert moved[torch.isfinite(moved)].abs().max() < 0.5
    noisy_feats = torch.cat([torch.nan_to_num(4 * (seen[0] - 0.5)), torch.isfinite(seen[0]).float()], dim=1)
    assert noisy_feats[0, 6:].eq(0).all() and noisy_feats[0, 2:4].eq(0).all()  # row 0's zone stays unknown
    torch.testing.assert_close(noisy.point_token(seen[0]), noisy.point_in_proj(noisy_feats)[:, None])
    inputs.batch.subtask_point = None
    with pytest.raises(ValueError, match="point_input"):
        head.prepare(inputs)
    inputs.batch.has_actions[:] = False  # no flow target (e.g. VQA only): no point is needed
    assert [s.name for s in head.prepare(inputs).segments] == ["point", "actions"]

    class Reading(_RecordingRunner):  # the action tokens' output is the point token's first channels
        def run(self, segments, *, context=None, conds=None):
            self.calls += 1
            point = segments[0].embeds
            return SimpleNamespace(hidden={"actions": point.expand(-1, 4, -1)})

    def sample(points):
        inputs = InferenceInputs(runner=Reading(head), context=None, state_tokens=None, batch_size=2,
                                 start_token=1, eos_token=2, embed_tokens=None, logits=None, points=points)
        return head.sample(inputs, noise=torch.zeros(2, 4, 3)).actions

    a = sample(torch.tensor([[0.2, 0.7, 0.1, 0.1], [0.5, 0.5, nan, nan]]))
    b = sample(torch.tensor([[0.25, 0.7, 0.1, 0.1], [0.5, 0.5, nan, nan]]))
    assert not torch.allclose(a[0], b[0]) and torch.allclose(a[1], b[1])
    with pytest.raises(ValueError, match="none was given"):
        sample(None)
    with pytest.raises(ValueError, match="point_dim"):
        sample(torch.zeros(2, 3))


def test_noise_scale_scales_the_noise_the_sampler_draws_but_not_given_noise():
    head = flow_head(time_conditioning="concat_mlp")
    with torch.no_grad():
        head.action_out_proj.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))

    def sample(scale, noise=None, seed=0):
        inputs = InferenceInputs(runner=_RecordingRunner(head), context=None, state_tokens=None, batch_size=2,
                                 start_token=1, eos_token=2, embed_tokens=None, logits=None, noise_scale=scale)
        torch.manual_seed(seed)
        return head.sample(inputs, noise=noise, num_steps=5).actions

    shift = torch.tensor([0.5, -1.0, 2.0])  # zero hidden: the chunk ends at noise - bias
    torch.manual_seed(4)
    drawn = head.noise((2, 4, 3), device="cpu")
    torch.testing.assert_close(sample(1.0, seed=4), drawn - shift)
    torch.testing.assert_close(sample(0.5, seed=4), 0.5 * drawn - shift)
    torch.testing.assert_close(sample(0.0, seed=1), (-shift).expand(2, 4, 3))  # deterministic
    torch.testing.assert_close(sample(0.0, seed=2), sample(0.0, seed=3))
    torch.testing.assert_close(sample(0.0, noise=drawn), drawn - shift)  # given noise is used as given
