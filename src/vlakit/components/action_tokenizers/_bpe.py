"""The ``tokenizers`` side of FAST: integer symbols <-> characters <-> BPE ids, batched.

Symbol ``k`` (a coefficient minus ``min_token``) is the character ``chr(k)``. Whole batches are
converted with one UTF-32 encode/decode instead of a Python loop per symbol, and BPE runs through
``encode_batch_fast`` / ``decode_batch`` (Rust, multi-threaded). FAST encodes through the batched
encoder of :mod:`._bpe_encode` instead when it supports the file; :func:`encode_symbols` is then
the reference it is tested against.

vlakit-trained tokenizers use no normaliser and no pre-tokeniser (merges may span the whole
chunk) and a ``Fuse`` decoder (tokens are concatenated). Released FAST+ files use a byte-level
pre-tokeniser and decoder; they are used as stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vlakit.interfaces.action_tokenizer import ActionTokenizerError


def symbols_to_strings(symbols: np.ndarray) -> list[str]:
    """int ``[B, L]`` non-negative symbols -> B strings of length L (``chr`` of each symbol)."""
    b, length = symbols.shape
    text = np.ascontiguousarray(symbols, dtype="<u4").tobytes().decode("utf-32-le")
    return [text[i * length:(i + 1) * length] for i in range(b)]


def strings_to_symbols(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """B strings -> (flat uint32 symbols, int64 lengths ``[B]``)."""
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    flat = np.frombuffer("".join(strings).encode("utf-32-le"), dtype="<u4").astype(np.int64)
    return flat, lengths


def encode_symbols(bpe: Any, symbols: np.ndarray) -> list[list[int]]:
    """int ``[B, L]`` symbols (already range-checked) -> B lists of BPE ids."""
    encodings = bpe.encode_batch_fast(symbols_to_strings(symbols), add_special_tokens=False)
    return [e.ids for e in encodings]


def decode_symbols(bpe: Any, flat_ids: np.ndarray, lengths: np.ndarray,
                   *, skip: dict[int, str]) -> tuple[np.ndarray, np.ndarray]:
    """Flat BPE ids + per-sample lengths -> (flat symbols, symbols per sample).

    Samples listed in ``skip`` (already known bad) decode to nothing.
    """
    ids = flat_ids.tolist()
    ends = np.cumsum(lengths).tolist()
    starts = [0, *ends[:-1]]
    lists = [[] if i in skip else ids[s:e] for i, (s, e) in enumerate(zip(starts, ends))]
    return strings_to_symbols(bpe.decode_batch(lists, skip_special_tokens=False))


def train(symbols: np.ndarray, *, n_symbols: int, vocab_size: int, min_frequency: int) -> Any:
    """Train a BPE over int ``[N, L]`` symbol rows; every symbol in ``[0, n_symbols)`` is in the
    initial alphabet, so any in-range string encodes without unknowns."""
    from tokenizers import Tokenizer, decoders, models, trainers

    bpe = Tokenizer(models.BPE())
    bpe.decoder = decoders.Fuse()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[], show_progress=False,
        initial_alphabet=[chr(i) for i in range(n_symbols)],
    )
    bpe.train_from_iterator(symbols_to_strings(symbols), trainer=trainer, length=len(symbols))
    return bpe


def load_file(path: Path) -> Any:
    """``tokenizer.json`` -> ``tokenizers.Tokenizer``, raising :class:`ActionTokenizerError` (the
    text tokenizers' loader, shared)."""
    from vlakit.components.text._base import read_tokenizer_file

    return read_tokenizer_file(path, error=ActionTokenizerError,
                               what="FAST tokenizer file")


def check_round_trip(bpe: Any, *, n_symbols: int, source: str) -> None:
    """Every symbol must survive encode -> decode; catches a missing alphabet symbol (dropped
    without an unknown token) or a decoder that inserts separators."""
    probe = np.concatenate([np.arange(n_symbols), np.arange(n_symbols)[::-1], np.zeros(64, np.int64)])
    ids = encode_symbols(bpe, probe[None])
    flat, _ = decode_symbols(bpe, np.asarray(ids[0], dtype=np.int64),
                                   np.array([len(ids[0])]), skip={})
    if len(flat) != len(probe) or not np.array_equal(flat, probe):
        n = min(len(flat), len(probe))
        diff = np.flatnonzero(flat[:n] != probe[:n])
        first = int(diff[0]) if len(diff) else n
        symbol = int(probe[first]) if first < len(probe) else None
        raise ActionTokenizerError(
            f"{source} does not round-trip coefficient symbols exactly: {len(probe)} symbols in, "
            f"{len(flat)} out, first difference at position {first} (symbol {symbol}). Its alphabet "
            "must cover every symbol and its decoder must concatenate tokens.")
