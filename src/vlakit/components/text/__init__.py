"""Built-in text tokenizers: ``tabletop_bpe`` (shipped) and ``hf_json`` (any local tokenizer.json).

Importing this package registers both in :data:`vlakit.registry.TEXT_TOKENIZERS`.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlakit.components.text import hf_json, tabletop_bpe
from vlakit.components.text._base import CONFIG_FILE, TokenizersTextTokenizer
from vlakit.components.text.hf_json import HfJsonConfig, HfJsonTextTokenizer
from vlakit.components.text.tabletop_bpe import TabletopBpeConfig, TabletopBpeTokenizer
from vlakit.interfaces.text_tokenizer import TextTokenizerError


def load_text_tokenizer(folder: str | Path) -> TokenizersTextTokenizer:
    """Load a folder written by :meth:`TokenizersTextTokenizer.save`."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TextTokenizerError(f"{path} does not exist: {folder} is not a saved vlakit text tokenizer") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TextTokenizerError(f"{path} is not valid JSON: {exc}") from None
    try:
        config = HfJsonConfig.model_validate({**spec, "path": str(folder)})
    except ValueError as exc:
        raise TextTokenizerError(f"{path}: invalid text tokenizer spec: {exc}") from None
    return config.build()


__all__ = [
    "HfJsonConfig",
    "HfJsonTextTokenizer",
    "TabletopBpeConfig",
    "TabletopBpeTokenizer",
    "TokenizersTextTokenizer",
    "hf_json",
    "load_text_tokenizer",
    "tabletop_bpe",
]
