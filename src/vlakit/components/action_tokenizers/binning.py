"""Binning action tokenizer (RT-2 / OpenVLA style): one code per value, N uniform bins.

Each normalised value is clipped to ``[low, high]`` and mapped to one of ``bins`` equal-width bins;
decoding returns the bin centre, so in-range values round-trip within half a bin width. A chunk
``[H, A]`` always becomes ``H * A`` codes (time-major, dims interleaved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from vlakit.components.action_tokenizers._common import (
    CONFIG_FILE,
    check_chunks,
    check_decode_shape,
    flatten_codes,
    out_of_vocab_errors,
    read_config,
    write_config,
)
from vlakit.config import ComponentConfig
from vlakit.interfaces.action_tokenizer import ActionTokenizer, ActionTokenizerError, DecodeResult
from vlakit.registry import ACTION_TOKENIZERS


class BinningConfig(ComponentConfig):
    """Uniform per-value binning over ``[low, high]`` (values outside are clipped)."""

    type: Literal["binning"] = "binning"
    bins: int = Field(256, ge=2, description="number of bins = vocabulary size")
    low: float = -1.0
    high: float = 1.0
    horizon: int | None = Field(None, ge=1, description="fix the chunk length H (None = any)")
    action_dim: int | None = Field(None, ge=1, description="fix the action dim A (None = any)")

    @model_validator(mode="after")
    def _ordered(self) -> BinningConfig:
        if not self.low < self.high:
            raise ValueError(f"low must be < high; got low={self.low}, high={self.high}")
        return self

    def build(self, **_context: Any) -> BinningActionTokenizer:
        return BinningActionTokenizer(config=self)


@ACTION_TOKENIZERS.register
class BinningActionTokenizer(ActionTokenizer):
    """codes = ``floor((clip(x) - low) / width)``, clamped to ``[0, bins)``; decode = bin centres."""

    Config = BinningConfig

    def __init__(self, *, config: BinningConfig) -> None:
        self.config = config
        #: values clipped into ``[low, high]`` by encode since construction (counted, not silent)
        self.clipped_values = 0

    @property
    def vocab_size(self) -> int:
        return self.config.bins

    @property
    def bin_width(self) -> float:
        return (self.config.high - self.config.low) / self.config.bins

    def encode(self, actions: np.ndarray) -> list[list[int]]:
        """float ``[B, H, A]`` (or ``[H, A]``) -> B lists of ``H * A`` codes."""
        return self.encode_array(actions).tolist()

    def encode_array(self, actions: np.ndarray) -> np.ndarray:
        """Like :meth:`encode` but returns int64 ``[B, H * A]``."""
        c = self.config
        x = check_chunks(actions, horizon=c.horizon, action_dim=c.action_dim)
        self.clipped_values += int(np.count_nonzero((x < c.low) | (x > c.high)))
        codes = np.floor((np.clip(x, c.low, c.high) - c.low) / self.bin_width).astype(np.int64)
        return np.minimum(codes, c.bins - 1).reshape(len(x), -1)

    def code_lengths(self) -> np.ndarray:
        """Every bin code is one value."""
        return np.ones(self.vocab_size, dtype=np.int64)

    def decode(self, codes: list[list[int]], *, horizon: int, action_dim: int) -> DecodeResult:
        """B code lists -> float32 ``[B, horizon, action_dim]`` bin centres; bad samples NaN."""
        c = self.config
        check_decode_shape(horizon, action_dim, fixed_horizon=c.horizon, fixed_action_dim=c.action_dim)
        flat, lengths = flatten_codes(codes)
        errors = out_of_vocab_errors(flat, lengths, limit=c.bins)
        per = horizon * action_dim
        for i in np.flatnonzero(lengths != per):
            errors.setdefault(int(i), f"got {int(lengths[i])} codes, expected {per} "
                                      f"(horizon {horizon} x action_dim {action_dim})")
        ok = np.ones(len(lengths), dtype=bool)
        ok[list(errors)] = False
        actions = np.full((len(lengths), horizon, action_dim), np.nan, dtype=np.float32)
        if ok.any():
            keep = ok[np.repeat(np.arange(len(lengths)), lengths)]
            centres = c.low + (flat[keep] + 0.5) * self.bin_width
            actions[ok] = centres.reshape(-1, horizon, action_dim)
        return DecodeResult(actions=actions, ok=ok, errors=[errors.get(i) for i in range(len(lengths))])

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_config(folder, type_="binning", config=self.config.model_dump(mode="json"), state={})

    @classmethod
    def load(cls, folder: str | Path) -> BinningActionTokenizer:
        folder = Path(folder)
        doc = read_config(folder)
        if doc["type"] != "binning":
            raise ActionTokenizerError(f"{folder / CONFIG_FILE} describes a {doc['type']!r} tokenizer, "
                                       "not 'binning'")
        try:
            return cls(config=BinningConfig.model_validate(doc["config"]))
        except ValidationError as exc:
            raise ActionTokenizerError(f"{folder / CONFIG_FILE}: invalid config: {exc}") from None
