"""Text tokenizer interface (prompts, subtasks, answers)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from vlakit.errors import VlakitError


class TextTokenizerError(VlakitError, ValueError):
    """Bad input to a text tokenizer or a bad tokenizer file (missing special token, bad id)."""


class TextTokenizer(ABC):
    """Strings <-> token ids with BOS/EOS/PAD. Ids are in ``[0, vocab_size)``."""

    Config: ClassVar[type]

    @property
    @abstractmethod
    def vocab_size(self) -> int: ...

    @property
    @abstractmethod
    def bos_id(self) -> int: ...

    @property
    @abstractmethod
    def eos_id(self) -> int: ...

    @property
    @abstractmethod
    def pad_id(self) -> int: ...

    @abstractmethod
    def encode(self, texts: list[str], *, add_bos: bool = False, add_eos: bool = False) -> list[list[int]]:
        """Batch-encode strings (no padding, no truncation)."""

    @abstractmethod
    def decode(self, ids: list[list[int]], *, skip_special: bool = True) -> list[str]:
        """Batch-decode id lists to strings."""

    @abstractmethod
    def save(self, folder: str | Path) -> None: ...
