"""FAST action tokenizer: DCT along time, scale and round, BPE over the coefficient string.

Encode (batched, no Python work per coefficient):

1. orthonormal DCT-II along time of every action dim (one matrix product for the whole batch);
2. ``round(coeff * scale)``; flatten low frequency first with the dims interleaved (row-major
   ``[H, A]``, as the released FAST processor does);
3. subtract ``min_token`` and map each integer ``k`` to the character ``chr(k)``;
4. BPE-encode the strings: with vlakit's batched BPE encoder (:mod:`._bpe_encode`, compiled with
   numba, ids identical to ``tokenizers``) when the tokenizer file is one it reproduces -- those
   vlakit trains -- else with the ``tokenizers`` library (``encode_batch_fast``), e.g. for the
   byte-level FAST+ files. :attr:`FastActionTokenizer.bpe_encoder` says which, and why.

Decode is the exact inverse (BPE decode, ``ord``, add ``min_token``, divide by ``scale``,
DCT-III), so the round-trip error per action dim is bounded by the rounding: the L2 norm over time
of ``decode(encode(x)) - x`` is at most ``0.5 * sqrt(H) / scale``.

Saved folders hold ``tokenizer.json`` + ``action_tokenizer.json``. A folder in the released FAST+
layout (``processor_config.json`` + ``tokenizer.json``) loads too; its own pre-tokenizer and
decoder (byte-level) are used as stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError

from vlakit.components.action_tokenizers import _bpe, _bpe_encode
from vlakit.components.action_tokenizers._common import (
    CONFIG_FILE,
    check_chunks,
    check_decode_shape,
    flatten_codes,
    out_of_vocab_errors,
    read_config,
    write_config,
)
from vlakit.components.action_tokenizers._dct import dct_time, idct_time
from vlakit.config import ComponentConfig
from vlakit.interfaces.action_tokenizer import ActionTokenizer, ActionTokenizerError, DecodeResult
from vlakit.registry import ACTION_TOKENIZERS

TOKENIZER_FILE = "tokenizer.json"
FAST_PLUS_CONFIG = "processor_config.json"
# Symbols are chr(k) for k < vocab_size; staying below the UTF-16 surrogates keeps every one valid.
_MAX_VOCAB = 50_000
#: chunks per block in :meth:`FastActionTokenizer.encode`
_ENCODE_BLOCK = 1024


class FastConfig(ComponentConfig):
    """FAST (DCT + BPE) action tokenizer.

    ``path`` loads a saved folder (vlakit or released FAST+ layout); fields set next to it must
    agree with the folder. Without ``path`` the tokenizer must be :meth:`~FastActionTokenizer.fit`
    before it encodes.
    """

    type: Literal["fast"] = "fast"
    scale: float = Field(10.0, gt=0, description="DCT coefficients are multiplied by this, then rounded")
    vocab_size: int = Field(1024, ge=2, le=_MAX_VOCAB, description="BPE vocabulary size (codes < this)")
    min_token: int | None = Field(None, description="fixed lowest coefficient; None = the fit data's minimum")
    horizon: int | None = Field(None, ge=1, description="fix the chunk length H (None = any)")
    action_dim: int | None = Field(None, ge=1, description="fix the action dim A (None = any)")
    path: str | None = Field(None, description="folder to load: a saved vlakit tokenizer or FAST+ layout")
    #: what encode does with a coefficient outside the fitted range: raise, or clamp and count
    out_of_range: Literal["error", "clip"] = "error"

    def build(self, **_context: Any) -> FastActionTokenizer:
        if self.path is not None:
            return FastActionTokenizer.load(self.path, expect=self)
        return FastActionTokenizer(config=self)


@ACTION_TOKENIZERS.register
class FastActionTokenizer(ActionTokenizer):
    """DCT + BPE tokenizer; codes are BPE ids in ``[0, vocab_size)``."""

    Config = FastConfig

    def __init__(self, *, config: FastConfig) -> None:
        self.config = config
        self._bpe: Any = None  # tokenizers.Tokenizer once fitted/loaded
        self._batched: _bpe_encode.BatchedBPE | None = None  # its batched encoder, when supported
        self._code_lengths: np.ndarray | None = None  # cache of code_lengths()
        #: which BPE encoder ``encode`` uses: "batched" or "tokenizers (<why not batched>)"
        self.bpe_encoder = "none (not fitted)"
        self._min_token: int | None = None
        self._max_token: int | None = None
        #: coefficients clamped by ``out_of_range="clip"`` since construction (counted, never silent)
        self.clipped_values = 0

    # -- facts ------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def trained_vocab_size(self) -> int:
        """Tokens the BPE actually has (<= ``vocab_size``; fewer when merges ran out)."""
        self._require_fitted("report its trained vocabulary")
        return int(self._bpe.get_vocab_size())

    @property
    def is_fitted(self) -> bool:
        return self._bpe is not None

    @property
    def coefficient_range(self) -> tuple[int, int]:
        """Lowest and highest scaled coefficient this tokenizer can encode."""
        self._require_fitted("report its coefficient range")
        return int(self._min_token), int(self._max_token)  # type: ignore[arg-type]

    def _require_fitted(self, doing: str) -> None:
        if self._bpe is None:
            raise ActionTokenizerError(
                f"the FAST action tokenizer is not fitted, so it cannot {doing}: call "
                "fit(chunks) on training action chunks first, or load one with `path:` "
                "(e.g. a folder written by `vlakit tokenizer fit`, or a FAST+ folder)")

    # -- encode -----------------------------------------------------------------------------
    def quantize(self, actions: np.ndarray) -> np.ndarray:
        """float ``[B, H, A]`` (or ``[H, A]``) -> int64 ``[B, H, A]`` rounded scaled DCT coefficients."""
        return self._quantize(check_chunks(actions, horizon=self.config.horizon, action_dim=self.config.action_dim))

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        return np.rint(dct_time(x) * self.config.scale).astype(np.int64)

    def encode(self, actions: np.ndarray) -> list[list[int]]:
        """float ``[B, H, A]`` (or ``[H, A]``) normalised actions -> B lists of BPE ids."""
        self._require_fitted("encode")
        x = check_chunks(actions, horizon=self.config.horizon, action_dim=self.config.action_dim)
        codes: list[list[int]] = []
        # Blocks of chunks keep the DCT and rounding temporaries in cache (about 1.3x faster).
        for start in range(0, len(x), _ENCODE_BLOCK):
            q = self._quantize(x[start:start + _ENCODE_BLOCK])
            if self.config.out_of_range == "error" and q.size and not (q.min() >= self._min_token
                                                                       and q.max() <= self._max_token):
                return self.encode_coefficients(self._quantize(x))  # raises, counting the whole batch
            codes += self.encode_coefficients(q)
        return codes

    def encode_coefficients(self, coeffs: np.ndarray) -> list[list[int]]:
        """int ``[B, H, A]`` scaled coefficients -> B lists of BPE ids (range-checked)."""
        self._require_fitted("encode")
        coeffs = np.asarray(coeffs)
        if coeffs.ndim != 3 or not np.issubdtype(coeffs.dtype, np.integer):
            raise ActionTokenizerError(f"coefficients must be an integer array [B, H, A]; got "
                                       f"{coeffs.dtype} {tuple(coeffs.shape)}")
        lo, hi = self.coefficient_range
        if coeffs.size and (coeffs.min() < lo or coeffs.max() > hi):
            outside = (coeffs < lo) | (coeffs > hi)
            if self.config.out_of_range == "clip":
                self.clipped_values += int(np.count_nonzero(outside))
                coeffs = np.clip(coeffs, lo, hi)
            else:
                raise _range_error(coeffs, outside.reshape(len(coeffs), -1), lo=lo, hi=hi,
                                   scale=self.config.scale)
        if self._batched is not None:  # reads [B, H, A] in any layout: no copy of quantize's output
            return self._batched.encode_lists(coeffs, offset=lo)
        return _bpe.encode_symbols(self._bpe, coeffs.reshape(len(coeffs), -1) - lo)

    def code_lengths(self) -> np.ndarray | None:
        """DCT coefficients per BPE id (ids beyond the trained vocabulary: 0), or None for a BPE whose
        tokens do not map to whole symbols (e.g. a byte-level one, as in the released FAST+)."""
        self._require_fitted("code_lengths")
        if self._batched is None:
            return None
        if self._code_lengths is None:  # derived from the BPE once; decoders ask on every call
            n = self.trained_vocab_size
            _, counts = _bpe.decode_symbols(self._bpe, np.arange(n), np.ones(n, dtype=np.int64), skip={})
            self._code_lengths = np.zeros(self.vocab_size, dtype=np.int64)
            self._code_lengths[:n] = counts
        return self._code_lengths.copy()

    # -- decode -----------------------------------------------------------------------------
    def decode(self, codes: list[list[int]], *, horizon: int, action_dim: int) -> DecodeResult:
        """B lists of BPE ids -> float32 ``[B, horizon, action_dim]``; bad samples NaN + message."""
        res = self.decode_coefficients(codes, horizon=horizon, action_dim=action_dim)
        actions = np.full(res.actions.shape, np.nan, dtype=np.float32)
        if res.ok.any():
            good = res.actions[res.ok] / self.config.scale
            actions[res.ok] = idct_time(good).astype(np.float32)
        return DecodeResult(actions=actions, ok=res.ok, errors=res.errors)

    def decode_coefficients(self, codes: list[list[int]], *, horizon: int, action_dim: int) -> DecodeResult:
        """Like :meth:`decode` but stops before de-scaling: ``actions`` holds the integer
        coefficients ``[B, horizon, action_dim]`` as float64 (NaN where a sample failed)."""
        self._require_fitted("decode")
        check_decode_shape(horizon, action_dim, fixed_horizon=self.config.horizon,
                           fixed_action_dim=self.config.action_dim)
        flat, lengths = flatten_codes(codes)
        n_bpe = self.trained_vocab_size
        detail = "" if n_bpe == self.vocab_size else f" (the trained BPE has {n_bpe} of {self.vocab_size})"
        errors = out_of_vocab_errors(flat, lengths, limit=n_bpe, detail=detail)
        lo, hi = self.coefficient_range
        symbols, n_symbols = _bpe.decode_symbols(self._bpe, flat, lengths, skip=errors)
        per = horizon * action_dim
        bad_len = (n_symbols != per)
        too_big = np.zeros(len(lengths), dtype=bool)
        owner = np.repeat(np.arange(len(lengths)), n_symbols)
        np.logical_or.at(too_big, owner[symbols > hi - lo], True)
        for i in np.flatnonzero(bad_len | too_big):
            if int(i) in errors:
                continue
            errors[int(i)] = (
                f"decoded {int(n_symbols[i])} DCT coefficients, expected {per} "
                f"(horizon {horizon} x action_dim {action_dim})" if bad_len[i] else
                f"decoded a symbol outside the coefficient range [{lo}, {hi}] (an invalid byte "
                "sequence from the byte-level decoder)")
        ok = np.ones(len(lengths), dtype=bool)
        ok[list(errors)] = False
        out = np.full((len(lengths), horizon, action_dim), np.nan)
        if ok.any():
            keep = ok[owner]
            out[ok] = (symbols[keep].reshape(-1, horizon, action_dim) + lo).astype(np.float64)
        return DecodeResult(actions=out, ok=ok, errors=[errors.get(i) for i in range(len(lengths))])

    # -- fit --------------------------------------------------------------------------------
    def fit(self, chunks: np.ndarray, *, vocab_size: int | None = None, scale: float | None = None,
            min_frequency: int = 2, **kwargs: Any) -> None:
        """Train the BPE on float ``[N, H, A]`` chunks. Deterministic for the same data and settings.

        ``vocab_size``/``scale`` default to the config's (passing them replaces the config's).
        Raises :class:`ActionTokenizerError` when the coefficient range needs more symbols than
        ``vocab_size``, saying by how much.
        """
        if kwargs:
            raise ActionTokenizerError(f"FAST fit got unknown options {sorted(kwargs)}; it accepts "
                                       "vocab_size, scale, min_frequency")
        updates = {k: v for k, v in {"vocab_size": vocab_size, "scale": scale}.items() if v is not None}
        config = FastConfig.model_validate({**self.config.model_dump(), **updates})
        x = check_chunks(chunks, horizon=config.horizon, action_dim=config.action_dim, what="fit chunks")
        coeffs = np.rint(dct_time(x) * config.scale).astype(np.int64).reshape(len(x), -1)
        lo, hi = int(coeffs.min()), int(coeffs.max())
        if config.min_token is not None:
            if lo < config.min_token:
                raise ActionTokenizerError(f"fit chunks have a scaled DCT coefficient {lo}, below the "
                                           f"configured min_token {config.min_token}")
            lo = config.min_token
        n_symbols = hi - lo + 1
        if n_symbols > config.vocab_size:
            raise ActionTokenizerError(
                f"the scaled DCT coefficients of these chunks span [{lo}, {hi}] at scale {config.scale}: "
                f"{n_symbols} symbols, {n_symbols - config.vocab_size} more than vocab_size "
                f"{config.vocab_size}. Raise vocab_size to at least {n_symbols}, or lower scale to "
                f"about {config.scale * config.vocab_size / n_symbols:.3g} or less (are the actions "
                "normalised to about [-1, 1]?)")
        bpe = _bpe.train(coeffs - lo, n_symbols=n_symbols, vocab_size=config.vocab_size,
                         min_frequency=min_frequency)
        _bpe.check_round_trip(bpe, n_symbols=n_symbols, source="the freshly trained BPE")
        self.config = config
        self._attach(bpe, lo, hi)

    def _attach(self, bpe: Any, lo: int, hi: int) -> None:
        """Use ``bpe`` for symbols ``0 .. hi - lo``, through the batched encoder if it supports it."""
        try:
            self._batched = _bpe_encode.compile_encoder(bpe, n_symbols=hi - lo + 1)
            self.bpe_encoder = "batched"
        except _bpe_encode.UnsupportedBPE as exc:
            self._batched = None
            self.bpe_encoder = f"tokenizers ({exc})"
        self._bpe, self._min_token, self._max_token = bpe, lo, hi
        self._code_lengths = None  # derived from the new BPE on demand

    # -- save / load ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write ``tokenizer.json`` then ``action_tokenizer.json`` (last, so a crash leaves no
        half-saved tokenizer that loads)."""
        from vlakit.io import atomic_write_text

        self._require_fitted("be saved")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / TOKENIZER_FILE, self._bpe.to_str())
        write_config(folder, type_="fast", config=self.config.model_dump(mode="json", exclude={"path"}),
                     state={"min_token": self._min_token, "max_token": self._max_token})

    @classmethod
    def load(cls, folder: str | Path, *, expect: FastConfig | None = None) -> FastActionTokenizer:
        """Load a folder saved by :meth:`save`, or a released FAST+ folder.

        ``expect``: a config whose explicitly set fields must match the folder (``out_of_range``
        is taken from it, since it is a run-time policy, not a property of the files).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise ActionTokenizerError(f"FAST tokenizer folder {folder} does not exist")
        if (folder / CONFIG_FILE).exists():
            config, lo, hi = _read_vlakit(folder)
        elif (folder / FAST_PLUS_CONFIG).exists():
            config, lo, hi = _read_fast_plus(folder / FAST_PLUS_CONFIG)
        else:
            raise ActionTokenizerError(f"{folder} holds neither {CONFIG_FILE} (a vlakit FAST tokenizer) "
                                       f"nor {FAST_PLUS_CONFIG} (the released FAST+ layout)")
        if expect is not None:
            config = _reconcile(config, expect, folder=folder, min_token=lo)
        bpe = _bpe.load_file(folder / TOKENIZER_FILE)
        if bpe.get_vocab_size() > config.vocab_size:
            raise ActionTokenizerError(f"{folder / TOKENIZER_FILE} has {bpe.get_vocab_size()} tokens, more "
                                       f"than the vocab_size {config.vocab_size} its config declares")
        _bpe.check_round_trip(bpe, n_symbols=hi - lo + 1, source=str(folder / TOKENIZER_FILE))
        tok = cls(config=config)
        tok._attach(bpe, lo, hi)
        return tok


def _read_vlakit(folder: Path) -> tuple[FastConfig, int, int]:
    doc = read_config(folder)
    where = folder / CONFIG_FILE
    if doc["type"] != "fast":
        raise ActionTokenizerError(f"{where} describes a {doc['type']!r} tokenizer, not 'fast'")
    try:
        config = FastConfig.model_validate(doc["config"])
    except ValidationError as exc:
        raise ActionTokenizerError(f"{where}: invalid config: {exc}") from None
    state = doc["state"]
    lo, hi = state.get("min_token"), state.get("max_token")
    if not (isinstance(lo, int) and isinstance(hi, int) and lo <= hi < lo + config.vocab_size):
        raise ActionTokenizerError(f"{where}: state.min_token/max_token must be integers with "
                                   f"min <= max < min + vocab_size; got {lo!r}, {hi!r}")
    return config, lo, hi


def _read_fast_plus(path: Path) -> tuple[FastConfig, int, int]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ActionTokenizerError(f"{path} is not valid JSON: {exc}") from None
    missing = [k for k in ("scale", "vocab_size", "min_token") if k not in doc]
    if missing:
        raise ActionTokenizerError(f"{path} (FAST+ layout) lacks {', '.join(missing)}; it needs scale, "
                                   "vocab_size, min_token (and optionally action_dim, time_horizon)")
    try:
        config = FastConfig(scale=doc["scale"], vocab_size=doc["vocab_size"], min_token=doc["min_token"],
                            horizon=doc.get("time_horizon"), action_dim=doc.get("action_dim"))
    except ValidationError as exc:
        raise ActionTokenizerError(f"{path}: invalid FAST+ processor config: {exc}") from None
    # The released fit asserts max - min <= vocab_size, so symbols run 0..vocab_size.
    lo = int(doc["min_token"])
    return config, lo, lo + config.vocab_size - 1


def _reconcile(loaded: FastConfig, expect: FastConfig, *, folder: Path, min_token: int) -> FastConfig:
    """Fields set explicitly next to ``path`` must agree with the folder."""
    got = {**loaded.model_dump(), "min_token": min_token}
    clashes = [f"{k}={getattr(expect, k)!r} (folder has {got[k]!r})"
               for k in sorted(expect.model_fields_set - {"type", "path", "out_of_range"})
               if getattr(expect, k) != got[k]]
    if clashes:
        raise ActionTokenizerError(f"the FAST tokenizer at {folder} does not match the recipe: "
                                   f"{'; '.join(clashes)}. Drop those fields or fix them.")
    return loaded.model_copy(update={"out_of_range": expect.out_of_range, "path": str(folder)})


def _range_error(coeffs: np.ndarray, outside: np.ndarray, *, lo: int, hi: int, scale: float) -> ActionTokenizerError:
    rows = np.flatnonzero(outside.any(axis=1))
    b, j = np.argwhere(outside)[0]
    _, a = divmod(int(j), coeffs.shape[2])
    return ActionTokenizerError(
        f"{len(rows)} of {len(coeffs)} action chunks have scaled DCT coefficients outside this "
        f"tokenizer's range [{lo}, {hi}] at scale {scale} (first: chunk {b}, frequency {int(j) // coeffs.shape[2]}, "
        f"dim {a} = {int(coeffs.reshape(len(coeffs), -1)[b, j])}). Refit on data that covers them, check "
        "the normalisation, or set out_of_range='clip' to clamp (and count) them.")
