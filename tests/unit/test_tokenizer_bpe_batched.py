"""vlakit's batched BPE encoder (FAST's encode hot path) gives exactly the ids of `tokenizers`.

The reference everywhere is ``_bpe.encode_symbols`` -- ``tokenizers``' ``encode_batch_fast`` on the
``chr(symbol)`` strings -- and, for FAST+ style files, ``Tokenizer.encode`` one string at a time.
No timing here: throughput is ``benchmarks/action_tokenizers.py``'s job.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.unit._tokenizer_data import smooth_chunks, tabletop_demo_chunks
from vlakit.components.action_tokenizers import FastActionTokenizer, FastConfig, _bpe, fast
from vlakit.components.action_tokenizers._bpe_encode import UnsupportedBPE, compile_encoder
from vlakit.interfaces.action_tokenizer import ActionTokenizerError

H, A = 50, 7


def _reference(tok: FastActionTokenizer, coeffs: np.ndarray) -> list[list[int]]:
    lo, _ = tok.coefficient_range
    return _bpe.encode_symbols(tok._bpe, np.asarray(coeffs).reshape(len(coeffs), -1) - lo)


def _fitted(chunks: np.ndarray, **config) -> FastActionTokenizer:
    tok = FastConfig(**config).build()
    tok.fit(chunks)
    assert tok.bpe_encoder == "batched"
    return tok


@pytest.fixture(scope="module")
def fitted() -> FastActionTokenizer:
    return _fitted(smooth_chunks(1500, seed=1))


_LETTERS = {ord("a"): 0, ord("b"): 1, ord("c"): 2}


def _sym(text: str) -> str:
    """Letters a, b, c -> the characters of symbols 0, 1, 2."""
    return text.translate(_LETTERS)


def _bpe_from(vocab: list[str], merges: list[tuple[str, str]]):
    """A BPE over symbols written as letters (a = symbol 0, ...), merges in the given rank order."""
    from tokenizers import Tokenizer, decoders, models

    bpe = Tokenizer(models.BPE({_sym(t): i for i, t in enumerate(vocab)},
                               [(_sym(a), _sym(b)) for a, b in merges]))
    bpe.decoder = decoders.Fuse()
    return bpe


# -- (a) smooth random chunks -----------------------------------------------------------------
@pytest.mark.parametrize(("scale", "vocab_size"), [(10.0, 1024), (40.0, 2048), (10.0, 300)])
def test_smooth_chunks_match_tokenizers(scale, vocab_size):
    tok = _fitted(smooth_chunks(800, seed=2), scale=scale, vocab_size=vocab_size, out_of_range="clip")
    # > fast._ENCODE_BLOCK chunks and several kernel blocks: block boundaries are covered
    x = smooth_chunks(2 * fast._ENCODE_BLOCK + 37, seed=3)
    q = np.clip(tok.quantize(x), *tok.coefficient_range)
    assert tok.encode(x) == _reference(tok, q)


def test_rough_coefficients_and_other_shapes_match(fitted):
    lo, hi = fitted.coefficient_range
    rng = np.random.default_rng(4)
    for shape in [(300, H, A), (40, 1, 1), (40, 3, 2), (5, 200, 7)]:
        coeffs = rng.integers(lo, hi + 1, size=shape)
        assert fitted.encode_coefficients(coeffs) == _reference(fitted, coeffs)
    narrow = rng.integers(-2, 3, size=(300, H, A))  # a few symbols, many short runs
    assert fitted.encode_coefficients(narrow) == _reference(fitted, narrow)


# -- (b) the embedded world's demonstrations ----------------------------------------------------
@pytest.mark.parametrize("embodiment", ["arm", "gripper"])
def test_tabletop_demonstrations_match_tokenizers(embodiment):
    chunks = tabletop_demo_chunks(embodiment=embodiment, episodes=40)
    tok = _fitted(chunks[::2], out_of_range="clip")
    held_out = chunks[1::2]
    q = np.clip(tok.quantize(held_out), *tok.coefficient_range)
    assert tok.encode(held_out) == _reference(tok, q)
    res = tok.decode(tok.encode(held_out), horizon=H, action_dim=chunks.shape[2])
    assert res.ok.all()


# -- (c) adversarial strings --------------------------------------------------------------------
def test_adversarial_coefficient_strings(fitted):
    lo, hi = fitted.coefficient_range
    n = hi - lo + 1
    cases = [
        np.zeros((4, H, A), np.int64),                                # the most common symbol, one run
        np.full((2, H, A), lo), np.full((2, H, A), hi),               # runs of the extreme symbols
        np.arange(n)[None, :, None] + lo,                             # every base symbol, ascending
        (hi - np.arange(n))[None, :, None],                           # ... descending
        np.repeat(np.arange(n)[:, None, None] + lo, 3, axis=1),       # every symbol, runs of 3
        np.zeros((1, 1, 1), np.int64), np.full((1, 1, 1), hi),        # single-symbol chunks
        np.zeros((1, 2000, 1), np.int64),                             # a very long run
        np.resize([0, 1], (3, 60, 5)), np.resize([0, 0, 1], (3, 60, 5)),  # alternations
    ]
    for run in range(1, 12):  # runs of every length up to 11 between other symbols
        cases.append(np.resize(np.r_[np.ones(1, np.int64), np.zeros(run, np.int64)], (1, 4 * (run + 1), 1)))
    for coeffs in cases:
        assert fitted.encode_coefficients(coeffs) == _reference(fitted, coeffs), coeffs.ravel()[:20]
    assert fitted.encode_coefficients(np.zeros((0, H, A), np.int64)) == []


def test_runs_pair_from_the_left_like_tokenizers():
    """`tokenizers` applies a pair (x, x) leftmost first: xxx -> (xx) x, xxxxx -> (xx)(xx) x."""
    bpe = _bpe_from(["a", "b", "aa", "aaaa", "aab"], [("a", "a"), ("aa", "aa"), ("aa", "b")])
    enc = compile_encoder(bpe, n_symbols=2)
    for text in ["aaa", "aaaaa", "aaab", "aaaab", "baaaaaaab", "abaaa"]:
        symbols = np.array([[ord(c) - ord("a") for c in text]])
        ids = bpe.encode(_sym(text)).ids
        assert enc.encode_lists(symbols) == [ids], text
    assert [bpe.id_to_token(i) for i in bpe.encode(_sym("aaa")).ids] == [_sym("aa"), _sym("a")]
    # leftmost first: aaab -> (aa) a b, not a (aa) b -> a (aab)
    assert [bpe.id_to_token(i) for i in bpe.encode(_sym("aaab")).ids] == [_sym("aa"), _sym("a"), _sym("b")]


@pytest.mark.parametrize("seed", range(6))
def test_bpes_trained_on_run_heavy_strings_match(seed):
    """Small alphabets, runs and repeats train merge tables full of (x, x) pairs and overlaps."""
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))

    def strings(n: int, length: int) -> np.ndarray:
        vals = rng.integers(0, k, (n, length))
        lens = rng.geometric(rng.uniform(0.05, 0.6), (n, length))
        return np.stack([np.resize(np.repeat(v, m), length) for v, m in zip(vals, lens)])

    bpe = _bpe.train(strings(200, 80), n_symbols=k, vocab_size=k + int(rng.integers(5, 200)), min_frequency=1)
    enc = compile_encoder(bpe, n_symbols=k)
    for symbols in (strings(50, int(rng.integers(1, 150))), rng.integers(0, k, (50, 97))):
        assert enc.encode_lists(symbols) == _bpe.encode_symbols(bpe, symbols)


def test_hand_written_merge_tables_match():
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(60):
        vocab = ["a", "b", "c"]
        merges: list[tuple[str, str]] = []
        for _ in range(int(rng.integers(1, 25))):
            a = vocab[int(rng.integers(len(vocab)))]
            b = a if rng.random() < 0.4 else vocab[int(rng.integers(len(vocab)))]
            if a + b not in vocab and len(a + b) <= 10:
                vocab.append(a + b)
                merges.append((a, b))
        bpe = _bpe_from(vocab, merges)
        enc = compile_encoder(bpe, n_symbols=3)
        symbols = np.resize(np.repeat(rng.integers(0, 3, 400), rng.integers(1, 7, 400)), (20, 60))
        assert enc.encode_lists(symbols) == _bpe.encode_symbols(bpe, symbols), merges
        checked += 1
    assert checked == 60


def test_large_ids_match():
    """Ids near FAST's 50,000 vocabulary limit (the pair hash takes 16-bit ids)."""
    from tokenizers import Tokenizer, decoders, models

    n = 45_000
    vocab = {chr(i): i for i in range(n)}
    rng = np.random.default_rng(9)
    hot = [int(i) for i in rng.choice(n, 6, replace=False)]
    merges = []
    for a, b in [(0, 0), (0, 1), (1, 1), (2, 0), (3, 3)]:
        pair = (chr(hot[a]), chr(hot[b]))
        vocab[pair[0] + pair[1]] = len(vocab)
        merges.append(pair)
    merges.append((chr(hot[0]) * 2, chr(hot[0]) * 2))
    vocab[chr(hot[0]) * 4] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab, merges))
    bpe.decoder = decoders.Fuse()
    enc = compile_encoder(bpe, n_symbols=n)
    symbols = np.asarray(hot)[rng.integers(0, 6, (40, 90))]
    symbols[:, ::7] = rng.integers(0, n, (40, 13))
    assert enc.encode_lists(symbols) == _bpe.encode_symbols(bpe, symbols)


def test_symbols_outside_the_table_raise(fitted):
    enc = fitted._batched
    with pytest.raises(ValueError, match=rf"symbols must be in \[0, {enc.n_symbols}\); got .* \[0, {enc.n_symbols}\]"):
        enc.encode(np.array([[0, enc.n_symbols]]))
    with pytest.raises(ValueError, match="symbols must be in"):
        enc.encode(np.array([[3, 2, 1]]), offset=2)


# -- what it refuses, and FAST falling back to `tokenizers` ------------------------------------
def test_unsupported_files_are_refused_with_the_reason():
    from tokenizers import pre_tokenizers

    base = _bpe_from(["a", "b", "ab"], [("a", "b")])
    compile_encoder(base, n_symbols=2)
    with pytest.raises(UnsupportedBPE, match=r"symbol 2 \(chr\(2\)\) is not in the vocabulary"):
        compile_encoder(base, n_symbols=3)
    byte_level = _bpe_from(["a", "b", "ab"], [("a", "b")])
    byte_level.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    with pytest.raises(UnsupportedBPE, match="pre_tokenizer ByteLevel"):
        compile_encoder(byte_level, n_symbols=2)
    added = _bpe_from(["a", "b", "ab"], [("a", "b")])
    added.add_special_tokens(["<s>"])
    with pytest.raises(UnsupportedBPE, match="1 added token"):
        compile_encoder(added, n_symbols=2)
    out_of_order = _bpe_from(["a", "b", "ab", "abb"], [("ab", "b"), ("a", "b")])
    with pytest.raises(UnsupportedBPE, match="not in creation order"):
        compile_encoder(out_of_order, n_symbols=2)
    doc = json.loads(base.to_str())
    doc["model"]["dropout"] = 0.5
    from tokenizers import Tokenizer

    with pytest.raises(UnsupportedBPE, match="dropout"):
        compile_encoder(Tokenizer.from_str(json.dumps(doc)), n_symbols=2)


def test_fast_plus_byte_level_file_encodes_through_tokenizers(tmp_path):
    from tests.unit.test_tokenizer_fast import _fast_plus_folder
    from vlakit.components.action_tokenizers import load_action_tokenizer

    bpe = _fast_plus_folder(tmp_path / "fp", smooth_chunks(300, seed=5), min_token=-354, vocab_size=2048)
    tok = load_action_tokenizer(tmp_path / "fp")
    assert tok.bpe_encoder.startswith("tokenizers (") and "ByteLevel" in tok.bpe_encoder
    x = smooth_chunks(20, seed=6)
    assert tok.encode(x) == [bpe.encode("".join(map(chr, row + 354))).ids
                             for row in tok.quantize(x).reshape(len(x), -1)]


def test_save_load_clip_and_errors_unchanged(fitted, tmp_path):
    fitted.save(tmp_path / "tok")
    loaded = FastActionTokenizer.load(tmp_path / "tok")
    assert loaded.bpe_encoder == "batched"
    x = smooth_chunks(3 * fast._ENCODE_BLOCK, seed=8)
    x[2500] += 3.0  # out of range, in the third encode block
    lo, hi = fitted.coefficient_range
    with pytest.raises(ActionTokenizerError, match=rf"1 of {len(x)} action chunks .*first: chunk 2500, frequency 0"):
        loaded.encode(x)
    clipping = FastConfig(path=str(tmp_path / "tok"), out_of_range="clip").build()
    q = fitted.quantize(x)
    assert clipping.encode(x) == _reference(fitted, np.clip(q, lo, hi))
    assert clipping.clipped_values == int(((q < lo) | (q > hi)).sum()) > 0
    (tmp_path / "tok" / "tokenizer.json").unlink()  # the shared tokenizer.json loader, FAST's error class
    with pytest.raises(ActionTokenizerError, match=r"FAST tokenizer file .*tokenizer.json does not exist"):
        FastActionTokenizer.load(tmp_path / "tok")
