"""Binning action tokenizer (RT-2 / OpenVLA style) and FAST vs binning compression."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit._tokenizer_data import smooth_chunks, tabletop_demo_chunks
from vlakit.components.action_tokenizers import (
    BinningActionTokenizer,
    BinningConfig,
    FastConfig,
    load_action_tokenizer,
)
from vlakit.components.action_tokenizers.report import evaluate_tokenizer
from vlakit.registry import ACTION_TOKENIZERS


def test_registered_and_vocab():
    assert ACTION_TOKENIZERS.get("binning") is BinningActionTokenizer
    assert BinningConfig(bins=100).build().vocab_size == 100


def test_bins_edges_and_centres():
    tok = BinningConfig(bins=4).build()  # edges -1, -0.5, 0, 0.5, 1
    x = np.array([[[-1.0], [-0.51], [-0.5], [0.0], [0.49], [0.5], [1.0], [7.0], [-7.0]]])
    assert tok.encode(x) == [[0, 0, 1, 2, 2, 3, 3, 3, 0]]
    res = tok.decode([[0, 1, 2, 3]], horizon=4, action_dim=1)
    np.testing.assert_allclose(res.actions[0, :, 0], [-0.75, -0.25, 0.25, 0.75])


def test_round_trip_within_half_a_bin():
    tok = BinningConfig().build()
    x = np.clip(smooth_chunks(50, seed=3), -1, 1)
    codes = tok.encode(x)
    assert all(len(c) == 50 * 7 and 0 <= min(c) and max(c) < 256 for c in codes)
    res = tok.decode(codes, horizon=50, action_dim=7)
    assert res.ok.all()
    assert np.abs(res.actions - x).max() <= tok.bin_width / 2 + 1e-6


def test_time_major_order():
    tok = BinningConfig(bins=10).build()
    x = np.array([[[-0.95, 0.95], [-0.05, 0.05]]])  # [H=2, A=2]
    assert tok.encode(x) == [[0, 9, 4, 5]]


def test_save_load(tmp_path):
    tok = BinningConfig(bins=64, low=-2, high=2, horizon=10).build()
    tok.save(tmp_path)
    back = load_action_tokenizer(tmp_path)
    assert isinstance(back, BinningActionTokenizer) and back.config == tok.config


def test_config_rejects_inverted_range():
    with pytest.raises(ValueError, match="low must be < high"):
        BinningConfig(low=1, high=-1)


def test_fast_uses_3x_fewer_tokens_than_binning_on_smooth_chunks():
    fast = FastConfig().build()
    fast.fit(smooth_chunks(1500, seed=1))
    held_out = smooth_chunks(500, seed=99)
    f = evaluate_tokenizer(fast, held_out)
    b = evaluate_tokenizer(BinningConfig().build(), held_out)
    assert b.mean_tokens == 350 and f.failed == 0
    assert b.mean_tokens / f.mean_tokens >= 3.0


@pytest.mark.slow  # ~25 s: generates 1,400 expert episodes
@pytest.mark.parametrize("embodiment", ["arm", "gripper"])
def test_fast_vs_binning_on_tabletop_demonstrations(embodiment):
    """Issue 4's bar: >= 3x fewer tokens than binning at H=50 on the world's demonstrations.

    FAST is fitted on 1,200 episodes (as `vlakit tokenizer fit` would on a dataset) and measured on
    200 other episodes. Measured: arm 3.49x, gripper 3.00x -- the gripper is right at the bar (its
    expert switches velocity and grip abruptly; fitted on only 300 episodes it gives 2.99x)."""
    train = tabletop_demo_chunks(embodiment=embodiment, episodes=1200)
    held_out = tabletop_demo_chunks(embodiment=embodiment, episodes=200, first_seed=5_000_000)
    fast = FastConfig().build()
    fast.fit(train)
    f = evaluate_tokenizer(fast, held_out)
    b = evaluate_tokenizer(BinningConfig().build(), held_out)
    assert f.failed == 0 and b.mean_tokens == 50 * held_out.shape[2]
    assert f.max_abs_error <= 0.5 * np.sqrt(50) / 10
    assert b.mean_tokens / f.mean_tokens >= 3.0


def test_code_lengths_add_up_to_the_chunk_size():
    """code_lengths() tells decoders how many values each code yields: the lengths of any encoded
    chunk sum to H x A (FAST: DCT coefficients per BPE token; binning: one value per code)."""
    chunks = smooth_chunks(300, seed=3)
    fast = FastConfig().build()
    fast.fit(chunks)
    binning = BinningConfig().build()
    for tok in (fast, binning):
        lengths = tok.code_lengths()
        assert lengths.shape == (tok.vocab_size,)
        for codes in tok.encode(chunks[:50]):
            assert int(lengths[codes].sum()) == chunks.shape[1] * chunks.shape[2]
    assert fast.code_lengths().max() > 1  # merged tokens cover several coefficients
