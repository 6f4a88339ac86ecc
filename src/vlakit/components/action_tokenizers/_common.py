"""Shared plumbing for action tokenizers: input checks, code flattening, the saved-folder config.

A saved action tokenizer is a folder holding ``action_tokenizer.json``::

    {"type": "fast", "format": 1, "config": {...Config fields...}, "state": {...fitted values...}}

plus whatever files the tokenizer needs (FAST: ``tokenizer.json``). :func:`load_action_tokenizer`
reads ``type`` and dispatches through the registry.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from vlakit.interfaces.action_tokenizer import ActionTokenizer, ActionTokenizerError

CONFIG_FILE = "action_tokenizer.json"
FORMAT_VERSION = 1


def check_chunks(actions: Any, *, horizon: int | None, action_dim: int | None,
                 what: str = "actions") -> np.ndarray:
    """Validate and return float64 ``[B, H, A]`` (a ``[H, A]`` input becomes ``B = 1``).

    Raises :class:`ActionTokenizerError` on wrong rank, a shape that differs from the fixed
    ``horizon``/``action_dim``, empty input or non-finite values (naming the first bad sample).
    """
    try:
        x = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ActionTokenizerError(f"{what} must be a float array [B, H, A]; got {type(actions).__name__} "
                                   f"({exc})") from None
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ActionTokenizerError(f"{what} must have shape [B, H, A] or [H, A]; got shape {tuple(x.shape)}")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise ActionTokenizerError(f"{what} has an empty horizon or action dim: shape {tuple(x.shape)}")
    if horizon is not None and x.shape[1] != horizon:
        raise ActionTokenizerError(f"{what} have horizon {x.shape[1]} but this tokenizer is fixed to "
                                   f"horizon {horizon} (shape {tuple(x.shape)})")
    if action_dim is not None and x.shape[2] != action_dim:
        raise ActionTokenizerError(f"{what} have action dim {x.shape[2]} but this tokenizer is fixed to "
                                   f"action_dim {action_dim} (shape {tuple(x.shape)})")
    finite = np.isfinite(x)
    if not finite.all():
        b, h, a = np.argwhere(~finite)[0]
        n_bad = int(np.count_nonzero(~finite.all(axis=(1, 2))))
        raise ActionTokenizerError(f"{what} contain non-finite values in {n_bad} chunk(s); first: "
                                   f"chunk {b}, step {h}, dim {a} = {x[b, h, a]}")
    return x


def check_decode_shape(horizon: int, action_dim: int, *, fixed_horizon: int | None,
                       fixed_action_dim: int | None) -> None:
    """The requested decode shape must be positive and agree with a tokenizer's fixed shape."""
    if horizon < 1 or action_dim < 1:
        raise ActionTokenizerError(f"decode needs horizon >= 1 and action_dim >= 1; got {horizon}, {action_dim}")
    if fixed_horizon is not None and horizon != fixed_horizon:
        raise ActionTokenizerError(f"decode asked for horizon {horizon} but this tokenizer is fixed to "
                                   f"horizon {fixed_horizon}")
    if fixed_action_dim is not None and action_dim != fixed_action_dim:
        raise ActionTokenizerError(f"decode asked for action_dim {action_dim} but this tokenizer is fixed "
                                   f"to action_dim {fixed_action_dim}")


def flatten_codes(codes: Any) -> tuple[np.ndarray, np.ndarray]:
    """B code lists -> (flat int64 codes, int64 lengths ``[B]``), without a Python loop per code.

    Raises :class:`ActionTokenizerError` if the input is not a sequence of integer sequences (a
    non-integer value is a caller bug, not a bad model output).
    """
    if isinstance(codes, np.ndarray) and codes.ndim == 2:
        return codes.astype(np.int64).ravel(), np.full(len(codes), codes.shape[1], dtype=np.int64)
    try:
        lengths = np.fromiter(map(len, codes), dtype=np.int64)
        total = int(lengths.sum())
        flat = np.fromiter(itertools.chain.from_iterable(codes), dtype=np.float64, count=total)
    except (TypeError, ValueError) as exc:
        raise ActionTokenizerError(f"codes must be a list of integer lists; got {type(codes).__name__} "
                                   f"({exc})") from None
    if total and not np.array_equal(flat, np.rint(flat)):
        i = int(np.flatnonzero(flat != np.rint(flat))[0])
        raise ActionTokenizerError(f"codes must be integers; found {flat[i]} at flat position {i}")
    return flat.astype(np.int64), lengths


def out_of_vocab_errors(flat: np.ndarray, lengths: np.ndarray, *, limit: int,
                        detail: str = "") -> dict[int, str]:
    """Per-sample messages for ids outside ``[0, limit)`` (empty dict when all are inside)."""
    bad = (flat < 0) | (flat >= limit)
    if not bad.any():
        return {}
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    sample_of = np.repeat(np.arange(len(lengths)), lengths)
    errors: dict[int, str] = {}
    for i in np.flatnonzero(bad):
        s = int(sample_of[i])
        if s not in errors:
            errors[s] = (f"token id {int(flat[i])} at position {int(i - starts[s])} is outside the "
                         f"vocabulary [0, {limit}){detail}")
    return errors


def write_config(folder: Path, *, type_: str, config: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``action_tokenizer.json`` atomically."""
    from vlakit.io import atomic_write_text

    doc = {"type": type_, "format": FORMAT_VERSION, "config": config, "state": state}
    atomic_write_text(folder / CONFIG_FILE, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def read_config(folder: Path) -> dict[str, Any]:
    """Read and check ``action_tokenizer.json`` (type, format, config, state)."""
    path = folder / CONFIG_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ActionTokenizerError(f"{path} does not exist: {folder} is not a saved vlakit action "
                                   "tokenizer") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ActionTokenizerError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not {"type", "format", "config", "state"} <= set(doc):
        raise ActionTokenizerError(f"{path} must be an object with keys type, format, config, state")
    if doc["format"] != FORMAT_VERSION:
        raise ActionTokenizerError(f"{path} has format {doc['format']!r}; this vlakit reads format "
                                   f"{FORMAT_VERSION}")
    return doc


def load_action_tokenizer(folder: str | Path) -> ActionTokenizer:
    """Load any saved action tokenizer folder (or a released FAST+ folder) by its recorded type."""
    from vlakit.registry import ACTION_TOKENIZERS

    folder = Path(folder)
    if not folder.is_dir():
        raise ActionTokenizerError(f"action tokenizer folder {folder} does not exist")
    if not (folder / CONFIG_FILE).exists() and (folder / "processor_config.json").exists():
        return ACTION_TOKENIZERS.get("fast").load(folder)  # released FAST+ layout
    doc = read_config(folder)
    return ACTION_TOKENIZERS.get(doc["type"]).load(folder)
