"""Shared implementation of text tokenizers backed by a ``tokenizers`` ``tokenizer.json``.

Special tokens (BOS/EOS/PAD) are named by string and must exist in the vocabulary. ``encode`` never
lets the file's post-processor add tokens (``add_special_tokens=False``): BOS/EOS are added only
when asked, so every tokenizer behaves the same whatever its file says.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vlakit.errors import closest
from vlakit.interfaces.text_tokenizer import TextTokenizer, TextTokenizerError

TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "text_tokenizer.json"


class TokenizersTextTokenizer(TextTokenizer):
    """A ``tokenizers.Tokenizer`` plus BOS/EOS/PAD token names."""

    def __init__(self, *, tokenizer: Any, bos_token: str, eos_token: str, pad_token: str, source: str) -> None:
        self._tok = tokenizer
        self.source = source
        self.special_tokens = {"bos": bos_token, "eos": eos_token, "pad": pad_token}
        ids = {}
        for role, token in self.special_tokens.items():
            tid = tokenizer.token_to_id(token)
            if tid is None:
                specials = sorted(t.content for t in tokenizer.get_added_tokens_decoder().values())
                hint = closest(token, specials or tokenizer.get_vocab())
                raise TextTokenizerError(
                    f"{source}: {role}_token {token!r} is not in the vocabulary"
                    + (f"; did you mean {hint!r}?" if hint else "")
                    + (f" Special tokens there: {', '.join(specials[:12])}" if specials else ""))
            ids[role] = tid
        self._ids = ids
        self._special_ids = frozenset(ids.values())
        self._vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def bos_id(self) -> int:
        return self._ids["bos"]

    @property
    def eos_id(self) -> int:
        return self._ids["eos"]

    @property
    def pad_id(self) -> int:
        return self._ids["pad"]

    def encode(self, texts: list[str], *, add_bos: bool = False, add_eos: bool = False) -> list[list[int]]:
        """B strings -> B id lists (optionally ``[bos] + ids + [eos]``); no padding or truncation."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TextTokenizerError(f"encode takes a list of strings; got {type(texts).__name__}"
                                     + (" (wrap a single string in a list)" if isinstance(texts, str) else ""))
        head = [self.bos_id] if add_bos else []
        tail = [self.eos_id] if add_eos else []
        encodings = self._tok.encode_batch_fast(list(texts), add_special_tokens=False)
        return [head + e.ids + tail for e in encodings]

    def decode(self, ids: list[list[int]], *, skip_special: bool = True) -> list[str]:
        """B id lists -> B strings; ``skip_special`` drops BOS/EOS/PAD and the file's special tokens.

        Raises :class:`TextTokenizerError` naming the first id outside ``[0, vocab_size)``.
        """
        lists = [list(map(int, row)) for row in ids]
        for b, row in enumerate(lists):
            bad = [i for i in row if not 0 <= i < self._vocab_size]
            if bad:
                raise TextTokenizerError(f"sample {b}: token id {bad[0]} is outside the vocabulary "
                                         f"[0, {self._vocab_size}) of {self.source}")
        if skip_special:
            lists = [[i for i in row if i not in self._special_ids] for row in lists]
        return self._tok.decode_batch(lists, skip_special_tokens=skip_special)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def save(self, folder: str | Path) -> None:
        """Write ``tokenizer.json`` and ``text_tokenizer.json`` (an ``hf_json`` spec); reload with
        :func:`vlakit.components.text.load_text_tokenizer`."""
        from vlakit.io import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / TOKENIZER_FILE, self._tok.to_str())
        spec = {"type": "hf_json", **{f"{k}_token": v for k, v in self.special_tokens.items()}}
        atomic_write_text(folder / CONFIG_FILE, json.dumps(spec, indent=2, sort_keys=True) + "\n")


def read_tokenizer_file(path: Path, *, error: type[Exception] = TextTokenizerError,
                        what: str = "text tokenizer file") -> Any:
    """Load a ``tokenizers`` ``tokenizer.json`` (a file, or a folder holding one).

    The one loader of tokenizer files: text tokenizers raise :class:`TextTokenizerError`, the FAST
    action tokenizer passes ``error=ActionTokenizerError``; ``what`` names the file in the
    message when it is missing.
    """
    from tokenizers import Tokenizer

    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.is_file():
        raise error(f"{what} {path} does not exist")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:
        raise error(f"{path} is not a valid `tokenizers` tokenizer.json: {exc}") from None
