"""Batched BPE encoder for FAST coefficient strings, exact to the ``tokenizers`` library.

``tokenizers`` stays the reference (and does fitting and decoding); this module re-implements only
its BPE *encode* for the restricted case vlakit trains -- no normaliser, no pre-tokeniser, no
added tokens, every coefficient symbol in the vocabulary -- so the FAST encode hot path costs a
few nanoseconds per symbol instead of one ``tokenizers`` call per chunk.

Algorithm. ``tokenizers`` merges a word with a priority queue of ``(rank, position)``: it always
applies the lowest-ranked adjacent pair, leftmost first, and pushes the pairs a merge creates. When
every merge that *creates* a token comes before every merge that *uses* it (true of any merge list
``tokenizers`` trains, checked here at compile time), a merge only ever creates pairs of higher
rank, so the queue pops ranks in increasing order and a bucket per rank replaces the heap. Within
one rank, merges of a pair ``(a, b)`` with ``a != b`` cannot overlap, so their order does not
matter; a pair ``(x, x)`` is applied to each run of ``x`` greedily from the run's left end, which is
what the leftmost-first queue does (``xxx`` -> ``(xx) x``). Runs are stored run-length encoded, so
a run costs O(1) per merge level however long it is -- FAST strings are mostly runs of the zero
coefficient. The kernel (:mod:`._bpe_kernel`) is compiled with ``numba``, single-threaded, and
works on blocks of chunks that fit in cache.

Exactness is tested against ``tokenizers`` (``tests/unit/test_tokenizer_bpe_batched.py``) on
smooth chunks, the embedded world's demonstrations, adversarial strings, BPEs trained on run-heavy
strings and hand-written merge tables.

:func:`compile_encoder` returns a :class:`BatchedBPE` or raises :class:`UnsupportedBPE` with the
reason; callers then keep encoding through ``tokenizers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

#: positions per kernel block (the working set -- tokens, links, rank buckets -- stays in L2)
_BLOCK_SYMBOLS = 1 << 15


class UnsupportedBPE(ValueError):
    """The tokenizer uses a feature the batched encoder does not reproduce (message says which)."""


@dataclass(frozen=True)
class BatchedBPE:
    """Merge tables of one BPE tokenizer, ready for :meth:`encode`.

    Attributes:
        n_symbols: symbols ``0 .. n_symbols-1`` (characters ``chr(k)``) are encodable.
        num_merges: merges in the table (rank order).
    """

    n_symbols: int
    num_merges: int
    _char_id: np.ndarray  # int32 [n_symbols]: vocabulary id of chr(k)
    _merge_a: np.ndarray  # int32 [R]: left token of merge r
    _merge_b: np.ndarray  # int32 [R]: right token of merge r
    _merge_new: np.ndarray  # int32 [R]: token merge r produces
    _keys: np.ndarray  # int64 [S]: open-addressing table of pairs (a << 16 | b), -1 = empty
    _ranks: np.ndarray  # int32 [S]: rank of the pair stored at the same slot

    def encode(self, values: np.ndarray, *, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """int ``[B, L]`` (or ``[B, H, A]``, read row-major per chunk, any memory layout) values whose
        symbols ``values - offset`` are in ``[0, n_symbols)`` -> (flat int32 ids, int64 ids per chunk
        ``[B]``): the ids ``tokenizers`` gives for the strings ``chr(symbol)...``.

        Raises ``ValueError`` if a symbol is outside ``[0, n_symbols)`` (the caller's to avoid:
        FAST range-checks coefficients first).
        """
        values = np.asarray(values)
        if values.ndim not in (2, 3) or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"values must be an integer array [B, L] or [B, H, A]; got {values.dtype} "
                             f"{values.shape}")
        if values.dtype != np.int64:
            values = values.astype(np.int64)
        if values.ndim == 2:
            values = values[:, :, None]
        b, length = len(values), values.shape[1] * values.shape[2]
        if b == 0 or length == 0:
            return np.zeros(0, np.int32), np.zeros(b, np.int64)
        try:
            out, lengths = _kernel()(values, offset, self._char_id, self._merge_a, self._merge_b,
                                     self._merge_new, self._keys, self._ranks, max(1, _BLOCK_SYMBOLS // length))
        except IndexError:
            raise ValueError(f"symbols must be in [0, {self.n_symbols}); got values - offset in "
                             f"[{int(values.min()) - offset}, {int(values.max()) - offset}]") from None
        return out[:int(lengths.sum())], lengths

    def encode_lists(self, values: np.ndarray, *, offset: int = 0) -> list[list[int]]:
        """Like :meth:`encode`, as B lists of ids (what ``Encoding.ids`` gives)."""
        flat, lengths = self.encode(values, offset=offset)
        ids = flat.tolist()  # from int32: about twice as fast as from int64
        ends = np.cumsum(lengths).tolist()
        return [ids[s:e] for s, e in zip([0, *ends[:-1]], ends)]


def compile_encoder(bpe: Any, *, n_symbols: int) -> BatchedBPE:
    """Build the batched encoder of a ``tokenizers.Tokenizer`` for symbols ``[0, n_symbols)``.

    Raises :class:`UnsupportedBPE` naming the first feature of the tokenizer that the batched
    encoder would not reproduce exactly (or ``numba`` being unavailable).
    """
    doc = json.loads(bpe.to_str())
    model = doc.get("model") or {}
    problems = []
    if model.get("type") != "BPE":
        problems.append(f"model type {model.get('type')!r} (only BPE)")
    for key in ("normalizer", "pre_tokenizer", "post_processor", "truncation", "padding"):
        if doc.get(key) is not None:
            kind = doc[key].get("type", "set") if isinstance(doc[key], dict) else "set"
            problems.append(f"{key} {kind}")
    if doc.get("added_tokens"):
        problems.append(f"{len(doc['added_tokens'])} added token(s)")
    if model.get("dropout") not in (None, 0, 0.0):
        problems.append(f"BPE dropout {model['dropout']}")
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            problems.append(f"{key} {model[key]!r}")
    if model.get("ignore_merges"):
        problems.append("ignore_merges")
    if problems:
        raise UnsupportedBPE("the tokenizer has " + ", ".join(problems))
    # unk_token / fuse_unk / byte_fallback only act on characters missing from the vocabulary;
    # every symbol must be in it (checked next), so they never act.
    vocab: dict[str, int] = model.get("vocab") or {}
    char_id = np.empty(n_symbols, dtype=np.int32)
    for k in range(n_symbols):
        tid = vocab.get(chr(k))
        if tid is None:
            raise UnsupportedBPE(f"symbol {k} (chr({k})) is not in the vocabulary")
        char_id[k] = tid
    if len(vocab) > 1 << 16:
        raise UnsupportedBPE(f"{len(vocab)} tokens (the pair table holds ids below {1 << 16})")
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in model.get("merges") or []]
    pair_rank: dict[tuple[int, int], int] = {}
    made_by: dict[int, int] = {}
    rows = []
    for rank, (a, b) in enumerate(merges):
        ia, ib, new = vocab.get(a), vocab.get(b), vocab.get(a + b)
        if ia is None or ib is None or new is None:
            raise UnsupportedBPE(f"merge {rank} ({a!r}, {b!r}) uses or makes a token not in the vocabulary")
        if (ia, ib) in pair_rank:
            raise UnsupportedBPE(f"merge {rank} ({a!r}, {b!r}) repeats merge {pair_rank[(ia, ib)]}")
        if new in made_by:
            raise UnsupportedBPE(f"merges {made_by[new]} and {rank} both make token {a + b!r}")
        pair_rank[(ia, ib)] = rank
        made_by[new] = rank
        rows.append((ia, ib, new))
    for rank, (ia, ib, _) in enumerate(rows):
        for part in (ia, ib):
            if made_by.get(part, -1) >= rank:
                raise UnsupportedBPE(f"merge {rank} uses a token that merge {made_by[part]} makes later "
                                     "(merges are not in creation order)")
    try:
        _kernel()
    except Exception as exc:  # numba missing, or it cannot compile/cache here
        raise UnsupportedBPE(f"the numba kernel is unavailable ({type(exc).__name__}: {exc})") from None
    table = np.asarray(rows, dtype=np.int32).reshape(-1, 3)
    keys, ranks = _hash_table(table[:, 0], table[:, 1])
    return BatchedBPE(n_symbols=n_symbols, num_merges=len(rows), _char_id=char_id,
                      _merge_a=np.ascontiguousarray(table[:, 0]), _merge_b=np.ascontiguousarray(table[:, 1]),
                      _merge_new=np.ascontiguousarray(table[:, 2]), _keys=keys, _ranks=ranks)


def _hash_table(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Open-addressing (linear probing) table ``(a << 16 | b) -> rank``, at most 1/4 full; the kernel
    probes it with the same :func:`_slot`."""
    bits = max(4, int(np.ceil(np.log2(max(len(a), 1) * 4))))
    keys = np.full(1 << bits, -1, dtype=np.int64)
    ranks = np.full(1 << bits, -1, dtype=np.int32)
    mask = (1 << bits) - 1
    for rank, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        key = (x << 16) | y
        slot = _slot(x, y, bits)
        while keys[slot] != -1:
            slot = (slot + 1) & mask
        keys[slot], ranks[slot] = key, rank
    return keys, ranks


def _slot(a: int, b: int, bits: int) -> int:
    """Multiplicative hash of the pair ``(a, b)`` to ``bits`` bits (the kernel's ``_slot``)."""
    return (((a * 2654435761) ^ (b * 2246822519)) & 0xFFFFFFFF) >> (32 - bits)


_KERNEL: Any = None


def _kernel() -> Any:
    """The numba-compiled kernel (compiled on first use, cached on disk by numba)."""
    global _KERNEL
    if _KERNEL is None:
        from vlakit.components.action_tokenizers import _bpe_kernel

        _KERNEL = _bpe_kernel.encode_blocks
    return _KERNEL
