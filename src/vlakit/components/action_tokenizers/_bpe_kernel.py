"""The numba kernel of :mod:`vlakit.components.action_tokenizers._bpe_encode` (imported on first
use, so ``import vlakit`` does not pay for numba). See that module for the algorithm."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _slot(a, b, bits):
    """Hash slot of the pair ``(a, b)`` (ids < 2**16: products < 2**48, no overflow); the same
    formula as ``_bpe_encode._slot``."""
    return (((np.int64(a) * 2654435761) ^ (np.int64(b) * 2246822519)) & 0xFFFFFFFF) >> (32 - bits)


@njit(cache=True, nogil=True, inline="always")
def _rank(a, b, keys, ranks, bits, mask):
    """Rank of merge ``(a, b)``, or -1."""
    key = (np.int64(a) << 16) | b
    slot = _slot(a, b, bits)
    while True:
        k = keys[slot]
        if k == key:
            return ranks[slot]
        if k == -1:
            return -1
        slot = (slot + 1) & mask


@njit(cache=True, nogil=True, inline="always")
def _push(r, pos, e_pos, e_next, head, n_entries):
    e_pos[n_entries] = pos
    e_next[n_entries] = head[r]
    head[r] = n_entries
    return n_entries + 1


@njit("Tuple((int32[::1], int64[::1]))(int64[:, :, :], int64, int32[::1], int32[::1], int32[::1], int32[::1], "
      "int64[::1], int32[::1], int64)", cache=True, nogil=True)
def encode_blocks(values, offset, char_id, merge_a, merge_b, merge_new, keys, ranks, block):
    """int ``[B, H, A]`` values (symbol + ``offset``; any memory layout; chunk ``c``'s string is
    ``values[c]`` row-major) -> (int32 ids packed chunk after chunk, int64 ids per chunk ``[B]``).
    Raises ``IndexError`` if a ``value - offset`` is outside ``[0, len(char_id))``.

    Chunks are processed ``block`` at a time. A chunk is a linked list of *nodes*, each a run of one
    token: ``tok[i]`` repeated ``cnt[i]`` times (``tok`` -1: node removed); ``nxt``/``prv`` link the
    nodes of a chunk (-1 at its ends). ``head[r]`` -> ``e_pos``/``e_next`` is the stack of nodes
    where the pair of merge ``r`` was seen -- at the junction with the next node, or inside the node
    for ``(x, x)``. Entries are re-checked when popped, like ``tokenizers``' queue entries, and
    every change pushes the pairs it creates (duplicates are harmless).

    Merge ``(a, b)``, ``a != b``: one pair per junction, ``a^n b^m -> a^(n-1) new b^(m-1)``.
    Merge ``(x, x)``: the run of ``x`` (possibly spread over adjacent nodes) pairs up from its left
    end, ``x^n -> new^(n // 2)`` plus one ``x`` if ``n`` is odd -- O(1) however long the run.
    """
    n_chunks, rows, cols = values.shape
    length = rows * cols
    n_merges = merge_a.shape[0]
    n_symbols = char_id.shape[0]
    bits = 0
    while (1 << bits) < keys.shape[0]:
        bits += 1
    mask = keys.shape[0] - 1
    out = np.empty(n_chunks * length, dtype=np.int32)
    lengths = np.zeros(n_chunks, dtype=np.int64)
    block = max(1, min(block, n_chunks))
    cap = block * length
    tok = np.empty(2 * cap, dtype=np.int32)
    cnt = np.empty(2 * cap, dtype=np.int32)
    nxt = np.empty(2 * cap, dtype=np.int32)
    prv = np.empty(2 * cap, dtype=np.int32)
    e_pos = np.empty(6 * cap + 16, dtype=np.int32)
    e_next = np.empty(6 * cap + 16, dtype=np.int32)
    head = np.full(max(n_merges, 1), -1, dtype=np.int32)
    written = 0
    for c0 in range(0, n_chunks, block):
        c1 = min(n_chunks, c0 + block)
        n_entries = 0
        lowest = n_merges
        free = cap  # next unused node id (nodes split off by merges)
        for c in range(c0, c1):
            chunk = values[c]
            base = (c - c0) * length
            last = -1  # node of the current run
            t_last = -1
            run = 0
            i = base
            for h in range(rows):
                for k in range(cols):
                    v = chunk[h, k] - offset
                    if v < 0 or v >= n_symbols:
                        raise IndexError("symbol outside the table")
                    t = char_id[v]
                    if t == t_last:
                        run += 1
                    else:
                        if last == -1:
                            prv[i] = -1
                        else:
                            cnt[last] = run
                            nxt[last] = i
                            prv[i] = last
                        tok[i] = t
                        last = i
                        t_last = t
                        run = 1
                    i += 1
            cnt[last] = run
            nxt[last] = -1
            i = base
            while i != -1:
                t = tok[i]
                if cnt[i] > 1:
                    r = _rank(t, t, keys, ranks, bits, mask)
                    if r >= 0:
                        n_entries = _push(r, i, e_pos, e_next, head, n_entries)
                        lowest = min(lowest, r)
                j = nxt[i]
                if j != -1:
                    r = _rank(t, tok[j], keys, ranks, bits, mask)
                    if r >= 0:
                        n_entries = _push(r, i, e_pos, e_next, head, n_entries)
                        lowest = min(lowest, r)
                i = j
        for r in range(lowest, n_merges):
            e = head[r]
            if e == -1:
                continue
            head[r] = -1
            a = merge_a[r]
            b = merge_b[r]
            new = merge_new[r]
            while e != -1:
                p = e_pos[e]
                e = e_next[e]
                if tok[p] != a:
                    continue
                q = nxt[p]
                if a != b:
                    if q == -1 or tok[q] != b:
                        continue
                    # a^n b^m -> a^(n-1) new b^(m-1)
                    left = prv[p]
                    right = nxt[q]
                    if cnt[p] > 1:
                        cnt[p] -= 1
                        m = free
                        free += 1
                        prv[m] = p
                        nxt[p] = m
                        left = p
                    else:
                        m = p
                    tok[m] = new
                    cnt[m] = 1
                    if cnt[q] > 1:
                        cnt[q] -= 1
                        right = q
                    else:
                        tok[q] = -1
                    nxt[m] = right
                    if right != -1:
                        prv[right] = m
                        r2 = _rank(new, tok[right], keys, ranks, bits, mask)
                        if r2 >= 0:
                            n_entries = _push(r2, m, e_pos, e_next, head, n_entries)
                    if left != -1:
                        r2 = _rank(tok[left], new, keys, ranks, bits, mask)
                        if r2 >= 0:
                            n_entries = _push(r2, left, e_pos, e_next, head, n_entries)
                    continue
                # (x, x): the whole run of x, from its left end
                if cnt[p] < 2 and (q == -1 or tok[q] != a):
                    continue
                while prv[p] != -1 and tok[prv[p]] == a:
                    p = prv[p]
                total = cnt[p]
                q = nxt[p]
                last = p
                while q != -1 and tok[q] == a:
                    total += cnt[q]
                    if last != p:
                        tok[last] = -1
                    last = q
                    q = nxt[q]
                # now p .. last hold the run; q is the node after it
                tok[p] = new
                cnt[p] = total // 2
                if total % 2 == 1:
                    if last == p:
                        last = free
                        free += 1
                        nxt[last] = q
                        if q != -1:
                            prv[q] = last
                            r2 = _rank(a, tok[q], keys, ranks, bits, mask)
                            if r2 >= 0:
                                n_entries = _push(r2, last, e_pos, e_next, head, n_entries)
                    tok[last] = a
                    cnt[last] = 1
                    prv[last] = p
                    nxt[p] = last
                    right = last
                else:
                    if last != p:
                        tok[last] = -1
                    nxt[p] = q
                    if q != -1:
                        prv[q] = p
                    right = q
                if total >= 4:
                    r2 = _rank(new, new, keys, ranks, bits, mask)
                    if r2 >= 0:
                        n_entries = _push(r2, p, e_pos, e_next, head, n_entries)
                if right != -1:
                    r2 = _rank(new, tok[right], keys, ranks, bits, mask)
                    if r2 >= 0:
                        n_entries = _push(r2, p, e_pos, e_next, head, n_entries)
                left = prv[p]
                if left != -1:
                    r2 = _rank(tok[left], new, keys, ranks, bits, mask)
                    if r2 >= 0:
                        n_entries = _push(r2, left, e_pos, e_next, head, n_entries)
        for c in range(c0, c1):
            i = (c - c0) * length
            count = 0
            while i != -1:
                t = tok[i]
                for _ in range(cnt[i]):
                    out[written] = t
                    written += 1
                count += cnt[i]
                i = nxt[i]
            lengths[c] = count
    return out, lengths
