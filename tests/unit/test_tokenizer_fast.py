"""FAST action tokenizer: DCT exactness, round-trip bounds, BPE exactness, fit, save/load, FAST+."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.unit._tokenizer_data import smooth_chunks
from vlakit.components.action_tokenizers import FastActionTokenizer, FastConfig, load_action_tokenizer
from vlakit.components.action_tokenizers._dct import dct_matrix, dct_time, idct_time
from vlakit.interfaces.action_tokenizer import ActionTokenizerError
from vlakit.registry import ACTION_TOKENIZERS

H, A = 50, 7


@pytest.fixture(scope="module")
def train_chunks() -> np.ndarray:
    return smooth_chunks(1500, seed=1)


@pytest.fixture(scope="module")
def fitted(train_chunks: np.ndarray) -> FastActionTokenizer:
    tok = FastConfig().build()
    tok.fit(train_chunks)
    return tok


def test_registered_under_fast():
    assert ACTION_TOKENIZERS.get("fast") is FastActionTokenizer
    assert isinstance(ACTION_TOKENIZERS.config_class("fast")(scale=5).build(), FastActionTokenizer)


def test_dct_matches_scipy_and_inverts():
    from scipy.fft import dct, idct

    x = np.random.default_rng(0).normal(size=(4, 13, 3))
    np.testing.assert_allclose(dct_time(x), dct(x, type=2, axis=1, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(idct_time(dct_time(x)), x, atol=1e-12)
    np.testing.assert_allclose(idct_time(x), idct(x, type=2, axis=1, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(dct_matrix(13) @ dct_matrix(13).T, np.eye(13), atol=1e-12)


@pytest.mark.parametrize("scale", [10.0, 40.0])
def test_round_trip_within_quantisation_bound(train_chunks, scale):
    tok = FastConfig(scale=scale, vocab_size=2048).build()
    tok.fit(train_chunks)
    x = smooth_chunks(300, seed=7)
    res = tok.decode(tok.encode(x), horizon=H, action_dim=A)
    assert res.ok.all() and res.actions.dtype == np.float32
    # Rounding moves each coefficient by <= 0.5/scale; the DCT is orthonormal, so the L2 error over
    # time of each action dim is bounded by the L2 norm of those H rounding errors.
    per_dim_l2 = np.linalg.norm(res.actions.astype(np.float64) - x, axis=1)
    assert per_dim_l2.max() <= 0.5 * np.sqrt(H) / scale + 1e-5
    # ... and it is exactly the rounding error of the coefficients (float32 output aside).
    q = tok.quantize(x)
    expected = idct_time(q / scale)
    np.testing.assert_allclose(res.actions, expected, atol=1e-6)


def test_integer_coefficients_survive_bpe_exactly(fitted):
    lo, hi = fitted.coefficient_range
    rng = np.random.default_rng(3)
    coeffs = rng.integers(lo, hi + 1, size=(64, H, A))  # rough, not smooth: unusual merges
    coeffs[0] = lo
    coeffs[1] = hi
    coeffs[2] = 0
    codes = fitted.encode_coefficients(coeffs)
    assert all(0 <= c < fitted.vocab_size for row in codes for c in row)
    back = fitted.decode_coefficients(codes, horizon=H, action_dim=A)
    assert back.ok.all()
    np.testing.assert_array_equal(back.actions, coeffs.astype(np.float64))


def test_batched_encode_equals_chunk_by_chunk(fitted):
    x = smooth_chunks(20, seed=11)
    batched = fitted.encode(x)
    assert batched == [fitted.encode(chunk)[0] for chunk in x]
    assert fitted.encode(x[0]) == [batched[0]]  # [H, A] input is one chunk


def test_compresses_smooth_chunks(fitted):
    codes = fitted.encode(smooth_chunks(300, seed=5))
    mean = np.mean([len(c) for c in codes])
    assert mean * 3 <= H * A  # binning needs H*A codes per chunk


def test_fit_is_deterministic(train_chunks):
    a, b = FastConfig().build(), FastConfig().build()
    a.fit(train_chunks)
    b.fit(train_chunks.copy())
    assert a._bpe.to_str() == b._bpe.to_str()
    x = smooth_chunks(50, seed=9)
    assert a.encode(x) == b.encode(x)


def test_fit_overrides_and_reports_range_overflow(train_chunks):
    tok = FastConfig().build()
    coeffs = np.rint(dct_time(train_chunks.astype(np.float64)) * 10).astype(np.int64)
    needed = int(coeffs.max() - coeffs.min() + 1)
    with pytest.raises(ActionTokenizerError) as err:
        tok.fit(train_chunks, vocab_size=needed - 5)
    msg = str(err.value)
    assert f"{needed} symbols, 5 more than vocab_size {needed - 5}" in msg and "scale" in msg
    assert not tok.is_fitted
    tok.fit(train_chunks, vocab_size=needed + 40, scale=10)
    assert tok.vocab_size == needed + 40 and tok.trained_vocab_size <= needed + 40


def test_fit_rejects_unknown_options(train_chunks):
    with pytest.raises(ActionTokenizerError, match="unknown options"):
        FastConfig().build().fit(train_chunks, vocab=12)


def test_save_load_round_trip(fitted, tmp_path):
    fitted.save(tmp_path / "tok")
    assert sorted(p.name for p in (tmp_path / "tok").iterdir()) == ["action_tokenizer.json", "tokenizer.json"]
    x = smooth_chunks(40, seed=21)
    for loaded in (load_action_tokenizer(tmp_path / "tok"), FastConfig(path=str(tmp_path / "tok")).build()):
        assert isinstance(loaded, FastActionTokenizer)
        assert loaded.coefficient_range == fitted.coefficient_range
        assert loaded.vocab_size == fitted.vocab_size
        assert loaded.encode(x) == fitted.encode(x)
        np.testing.assert_array_equal(loaded.decode(fitted.encode(x), horizon=H, action_dim=A).actions,
                                      fitted.decode(fitted.encode(x), horizon=H, action_dim=A).actions)


def test_path_with_contradicting_fields_fails(fitted, tmp_path):
    fitted.save(tmp_path)
    with pytest.raises(ActionTokenizerError, match=r"scale=5\.0 \(folder has 10\.0\)"):
        FastConfig(path=str(tmp_path), scale=5).build()
    ok = FastConfig(path=str(tmp_path), scale=10, out_of_range="clip").build()
    assert ok.config.out_of_range == "clip"


def test_load_rejects_missing_or_broken_files(fitted, tmp_path):
    with pytest.raises(ActionTokenizerError, match="neither action_tokenizer.json"):
        FastActionTokenizer.load(tmp_path)
    fitted.save(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ActionTokenizerError, match="tokenizer.json is not a valid"):
        FastActionTokenizer.load(tmp_path)


def _fast_plus_folder(path, chunks: np.ndarray, *, min_token: int, vocab_size: int) -> object:
    """A folder in the released FAST+ layout, trained the way the released processor trains:
    byte-level BPE, alphabet chr(0 .. max - min), min_frequency 2, no special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    coeffs = np.rint(dct_time(chunks.astype(np.float64)) * 10).astype(np.int64).reshape(len(chunks), -1)
    strings = ["".join(map(chr, row - min_token)) for row in coeffs]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    alphabet = [chr(i) for i in range(int(coeffs.max()) - min_token + 1)]
    bpe.train_from_iterator(strings, trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2,
                                                         initial_alphabet=alphabet, show_progress=False,
                                                         special_tokens=[], max_token_length=10000))
    path.mkdir()
    bpe.save(str(path / "tokenizer.json"))
    (path / "processor_config.json").write_text(json.dumps({
        "scale": 10, "vocab_size": vocab_size, "min_token": min_token, "action_dim": None,
        "time_horizon": None, "processor_class": "UniversalActionProcessor"}))
    return bpe


def test_fast_plus_layout_loads(train_chunks, tmp_path):
    bpe = _fast_plus_folder(tmp_path / "fast_plus", train_chunks[:600], min_token=-354, vocab_size=2048)
    tok = load_action_tokenizer(tmp_path / "fast_plus")
    assert isinstance(tok, FastActionTokenizer)
    assert (tok.config.scale, tok.vocab_size, tok.coefficient_range[0]) == (10.0, 2048, -354)
    assert tok.config.horizon is None and tok.config.action_dim is None
    x = smooth_chunks(30, seed=31, action_dim=6)  # FAST+ is universal: any H and A
    codes = tok.encode(x)
    # Same ids the released processor gets: its own tokenizer on chr(coeff - min_token) strings.
    q = tok.quantize(x).reshape(len(x), -1)
    assert codes == [bpe.encode("".join(map(chr, row + 354))).ids for row in q]
    res = tok.decode(codes, horizon=H, action_dim=6)
    assert res.ok.all()
    assert np.linalg.norm(res.actions - x, axis=1).max() <= 0.5 * np.sqrt(H) / 10 + 1e-5
    again = FastConfig(path=str(tmp_path / "fast_plus"), vocab_size=2048).build()
    assert again.encode(x) == codes


def test_fast_plus_config_missing_key(tmp_path):
    (tmp_path / "processor_config.json").write_text(json.dumps({"scale": 10, "vocab_size": 2048}))
    with pytest.raises(ActionTokenizerError, match="processor_config.json .*lacks min_token"):
        load_action_tokenizer(tmp_path)
