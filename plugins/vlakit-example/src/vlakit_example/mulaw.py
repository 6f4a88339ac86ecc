"""A mu-law companded binning action tokenizer: finer bins near zero, where most actions live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from vlakit.config import ComponentConfig
from vlakit.interfaces.action_tokenizer import ActionTokenizer, DecodeResult
from vlakit.io import atomic_write_text

CONFIG_FILE = "mulaw_tokenizer.json"


class MuLawConfig(ComponentConfig):
    type: Literal["example_mulaw"] = "example_mulaw"
    bins: int = Field(256, ge=2, le=65536)
    mu: float = Field(255.0, gt=0)

    def build(self, **_: object) -> MuLawTokenizer:
        return MuLawTokenizer(self)


class MuLawTokenizer(ActionTokenizer):
    """One code per value: ``code = bin(mu_law(clip(x, -1, 1)))``; decodes to bin centres."""

    Config = MuLawConfig

    def __init__(self, config: MuLawConfig | None = None) -> None:
        self.config = config or MuLawConfig()

    @property
    def vocab_size(self) -> int:
        return self.config.bins

    def _compress(self, x: np.ndarray) -> np.ndarray:
        mu = self.config.mu
        return np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)

    def _expand(self, y: np.ndarray) -> np.ndarray:
        mu = self.config.mu
        return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu

    def encode(self, actions: np.ndarray) -> list[list[int]]:
        arr = np.asarray(actions, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"expected actions of shape [B, H, A] or [H, A], got {arr.shape}")
        if not np.isfinite(arr).all():
            raise ValueError("actions contain NaN or inf")
        y = self._compress(np.clip(arr, -1.0, 1.0))
        codes = np.clip(np.floor((y + 1.0) / 2.0 * self.config.bins), 0, self.config.bins - 1).astype(np.int64)
        return codes.reshape(codes.shape[0], -1).tolist()

    def decode(self, codes: list[list[int]], *, horizon: int, action_dim: int) -> DecodeResult:
        n = horizon * action_dim
        out = np.full((len(codes), horizon, action_dim), np.nan, dtype=np.float32)
        ok = np.zeros(len(codes), dtype=bool)
        errors: list[str | None] = []
        for i, seq in enumerate(codes):
            seq = np.asarray(seq, dtype=np.int64)
            if seq.size != n:
                errors.append(f"expected {n} codes ({horizon}x{action_dim}), got {seq.size}")
                continue
            bad = seq[(seq < 0) | (seq >= self.config.bins)]
            if bad.size:
                errors.append(f"code {int(bad[0])} is outside the vocabulary [0, {self.config.bins})")
                continue
            centres = (seq + 0.5) / self.config.bins * 2.0 - 1.0
            out[i] = self._expand(centres).reshape(horizon, action_dim)
            ok[i] = True
            errors.append(None)
        return DecodeResult(actions=out, ok=ok, errors=errors)

    def save(self, folder: str | Path) -> None:
        atomic_write_text(Path(folder) / CONFIG_FILE, self.config.model_dump_json())

    @classmethod
    def load(cls, folder: str | Path) -> MuLawTokenizer:
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a saved example_mulaw tokenizer")
        return cls(MuLawConfig.model_validate(json.loads(path.read_text())))
