"""Action tokenizer interface: action chunks ``[H, A]`` <-> integer codes in ``[0, vocab_size)``.

Action tokenizers know nothing of any language vocabulary: the autoregressive head owns the map
from codes to LM token ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vlakit.errors import VlakitError


class ActionTokenizerError(VlakitError, ValueError):
    """Bad input to an action tokenizer (shape, NaN, out-of-range data, unfitted tokenizer, bad file).

    A ``ValueError`` so generic callers can catch it; a :class:`~vlakit.errors.VlakitError` so the
    CLI prints it as one paragraph.
    """


@dataclass
class DecodeResult:
    """Result of decoding a batch of code sequences.

    Attributes:
        actions: float32 ``[B, H, A]``; rows where ``ok`` is False are NaN (never zeros).
        ok: bool ``[B]``.
        errors: B messages (None where ok).
    """

    actions: np.ndarray
    ok: np.ndarray
    errors: list[str | None]

    @property
    def num_failed(self) -> int:
        """How many samples failed to decode."""
        return int(len(self.ok) - np.count_nonzero(self.ok))

    def raise_on_error(self) -> np.ndarray:
        """Return ``actions`` if every sample decoded; else raise naming the first failures."""
        if self.num_failed:
            bad = [f"sample {i}: {e}" for i, e in enumerate(self.errors) if e is not None][:3]
            raise ActionTokenizerError(f"{self.num_failed} of {len(self.ok)} code sequences failed to "
                                       f"decode ({'; '.join(bad)})")
        return self.actions


class ActionTokenizer(ABC):
    """Turns normalised action chunks into discrete codes and back.

    ``encode`` takes float ``[B, H, A]`` (or ``[H, A]``) in normalised units (about [-1, 1]) and
    returns one list of ints per chunk. ``decode`` is its inverse and reports per-sample failure.
    """

    Config: ClassVar[type]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct codes; every code is in ``[0, vocab_size)``."""

    @abstractmethod
    def encode(self, actions: np.ndarray) -> list[list[int]]:
        """float ``[B, H, A]`` -> B code lists.

        Raises :class:`ActionTokenizerError` (a ``ValueError``) on wrong rank or shape, non-finite
        input, or an unfitted tokenizer.
        """

    @abstractmethod
    def decode(self, codes: list[list[int]], *, horizon: int, action_dim: int) -> DecodeResult:
        """B code lists -> :class:`DecodeResult` with ``actions`` ``[B, horizon, action_dim]``.

        Never raises for a bad sequence (out-of-vocabulary id, wrong length): that sample gets
        ``ok=False``, NaN actions and a message naming the problem.
        """

    def code_lengths(self) -> np.ndarray | None:
        """int ``[vocab_size]``: how many values (chunk entries) each code decodes to, or None when
        that is not fixed per code. Decoders use it to emit exactly ``horizon * action_dim`` values;
        a code that can never be emitted has length 0. Default: None (unknown)."""
        return None

    def fit(self, chunks: np.ndarray, **kwargs: Any) -> None:
        """Fit data-dependent parts (e.g. BPE merges) on float ``[N, H, A]`` chunks. Default: no-op."""

    @property
    def is_fitted(self) -> bool:
        return True

    @abstractmethod
    def save(self, folder: str | Path) -> None:
        """Write everything needed to rebuild this tokenizer into ``folder``."""

    @classmethod
    @abstractmethod
    def load(cls, folder: str | Path) -> ActionTokenizer:
        """Rebuild a tokenizer saved by :meth:`save`."""
