"""Measure an action tokenizer on a set of chunks: token counts, compression, round-trip error."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from vlakit.interfaces.action_tokenizer import ActionTokenizer


@dataclass(frozen=True)
class TokenizerReport:
    """Token statistics and reconstruction error of ``decode(encode(chunks))``.

    Errors are in normalised action units, over successfully decoded chunks only
    (``failed`` counts the others).
    """

    num_chunks: int
    horizon: int
    action_dim: int
    mean_tokens: float
    max_tokens: int
    naive_tokens: int  #: ``H * A``: one token per value, as binning uses
    compression: float  #: ``naive_tokens / mean_tokens``
    failed: int
    max_abs_error: float
    rmse: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def evaluate_tokenizer(tokenizer: ActionTokenizer, chunks: np.ndarray, *, batch_size: int = 4096) -> TokenizerReport:
    """Encode and decode float ``[N, H, A]`` chunks in batches and summarise."""
    chunks = np.asarray(chunks)
    if chunks.ndim != 3 or len(chunks) == 0:
        raise ValueError(f"chunks must be a non-empty [N, H, A] array; got shape {chunks.shape}")
    n, h, a = chunks.shape
    counts: list[np.ndarray] = []
    failed = 0
    max_abs = 0.0
    sq_sum = 0.0
    sq_n = 0
    for s in range(0, n, batch_size):
        x = chunks[s:s + batch_size]
        codes = tokenizer.encode(x)
        counts.append(np.fromiter(map(len, codes), dtype=np.int64, count=len(codes)))
        res = tokenizer.decode(codes, horizon=h, action_dim=a)
        failed += res.num_failed
        if res.ok.any():
            err = res.actions[res.ok].astype(np.float64) - x[res.ok]
            max_abs = max(max_abs, float(np.abs(err).max()))
            sq_sum += float(np.square(err).sum())
            sq_n += err.size
    tokens = np.concatenate(counts)
    mean = float(tokens.mean())
    return TokenizerReport(
        num_chunks=n, horizon=h, action_dim=a, mean_tokens=mean, max_tokens=int(tokens.max()),
        naive_tokens=h * a, compression=(h * a) / mean if mean > 0 else float("inf"), failed=failed,
        max_abs_error=max_abs if sq_n else float("nan"),
        rmse=float(np.sqrt(sq_sum / sq_n)) if sq_n else float("nan"),
    )
