"""Bad inputs to the action tokenizers each give a specific error (or a flagged NaN sample)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit._tokenizer_data import smooth_chunks
from vlakit.components.action_tokenizers import BinningConfig, FastConfig
from vlakit.interfaces.action_tokenizer import ActionTokenizerError

H, A = 50, 7


@pytest.fixture(scope="module")
def fast():
    tok = FastConfig(horizon=H, action_dim=A).build()
    tok.fit(smooth_chunks(600, seed=2))
    return tok


@pytest.fixture(params=["fast", "binning"])
def tok(request, fast):
    return fast if request.param == "fast" else BinningConfig(horizon=H, action_dim=A).build()


def test_wrong_rank(tok):
    with pytest.raises(ActionTokenizerError, match=r"shape \[B, H, A\] or \[H, A\]; got shape \(350,\)"):
        tok.encode(np.zeros(H * A))


def test_wrong_shape_for_fixed_geometry(tok):
    with pytest.raises(ActionTokenizerError, match="horizon 49 but this tokenizer is fixed to horizon 50"):
        tok.encode(np.zeros((2, 49, A)))
    with pytest.raises(ActionTokenizerError, match="action dim 6 but this tokenizer is fixed to action_dim 7"):
        tok.encode(np.zeros((2, H, 6)))
    with pytest.raises(ActionTokenizerError, match="decode asked for horizon 10"):
        tok.decode([[1]], horizon=10, action_dim=A)


def test_nan_names_the_first_bad_value(tok):
    x = smooth_chunks(3, seed=0)
    x[2, 4, 1] = np.nan
    with pytest.raises(ActionTokenizerError, match=r"1 chunk\(s\); first: chunk 2, step 4, dim 1 = nan"):
        tok.encode(x)


def test_out_of_vocab_id_is_a_flagged_sample(tok):
    x = smooth_chunks(3, seed=4)
    codes = tok.encode(x)
    codes[1] = [*codes[1][:2], tok.vocab_size + 7, *codes[1][3:]]
    res = tok.decode(codes, horizon=H, action_dim=A)
    assert res.ok.tolist() == [True, False, True]
    assert f"token id {tok.vocab_size + 7} at position 2 is outside the vocabulary" in res.errors[1]
    assert np.isnan(res.actions[1]).all() and np.isfinite(res.actions[[0, 2]]).all()
    with pytest.raises(ActionTokenizerError, match="1 of 3 code sequences failed to decode .*sample 1"):
        res.raise_on_error()
    codes[1] = [-1]
    assert "token id -1 at position 0" in tok.decode(codes, horizon=H, action_dim=A).errors[1]


def test_truncated_sequence_is_nan_not_zeros(tok):
    codes = tok.encode(smooth_chunks(2, seed=6))
    codes[0] = codes[0][:-1]
    res = tok.decode(codes, horizon=H, action_dim=A)
    assert res.ok.tolist() == [False, True]
    assert f"expected {H * A} (horizon {H} x action_dim {A})" in res.errors[0]
    assert np.isnan(res.actions[0]).all()
    empty = tok.decode([[]], horizon=H, action_dim=A)
    assert not empty.ok[0] and np.isnan(empty.actions).all()


def test_non_integer_codes_are_rejected(tok):
    with pytest.raises(ActionTokenizerError, match="codes must be integers; found 1.5"):
        tok.decode([[1, 1.5]], horizon=H, action_dim=A)


def test_unfitted_fast_refuses_to_encode_and_decode():
    tok = FastConfig().build()
    with pytest.raises(ActionTokenizerError, match="not fitted, so it cannot encode: call fit"):
        tok.encode(smooth_chunks(1))
    with pytest.raises(ActionTokenizerError, match="not fitted, so it cannot decode"):
        tok.decode([[1]], horizon=H, action_dim=A)
    with pytest.raises(ActionTokenizerError, match="not fitted, so it cannot be saved"):
        tok.save("unused")


def test_fast_out_of_range_coefficients_error_or_clip(fast):
    x = smooth_chunks(4, seed=8)
    x[3] += 3.0  # a DC offset far outside the fitted range
    lo, hi = fast.coefficient_range
    pattern = (rf"1 of 4 action chunks .* outside this tokenizer's range \[{lo}, {hi}\]"
               r" .*first: chunk 3, frequency 0")
    with pytest.raises(ActionTokenizerError, match=pattern):
        fast.encode(x)
    clipping = FastConfig(horizon=H, action_dim=A, out_of_range="clip").build()
    clipping._attach(fast._bpe, lo, hi)
    q = fast.quantize(x)
    codes = clipping.encode(x)
    assert clipping.clipped_values == int(((q < lo) | (q > hi)).sum()) > 0
    assert clipping.decode(codes, horizon=H, action_dim=A).ok.all()


def test_binning_counts_clipped_values():
    tok = BinningConfig().build()
    x = np.array([[[-1.5, 0.0], [0.2, 1.2]]])
    tok.encode(x)
    assert tok.clipped_values == 2
