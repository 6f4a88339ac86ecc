"""``tabletop_bpe``: the small byte-level BPE shipped inside vlakit, trained on the tabletop
world's language (instructions, subtasks, VQA questions/answers) and the π0.5 prompt format
(``Task: ..., State: 0..255 ...;\\nAction: ``, FAST's ``|``).

Byte-level, so any text encodes without unknown tokens. Ids 0/1/2 are ``<pad>``/``<bos>``/``<eos>``.
Regenerate the asset with ``python -m vlakit.components.text.build_asset``.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Literal

from vlakit.components.text._base import TokenizersTextTokenizer
from vlakit.config import ComponentConfig
from vlakit.interfaces.text_tokenizer import TextTokenizerError
from vlakit.registry import TEXT_TOKENIZERS

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, BOS, EOS)  # ids 0, 1, 2 in this order
ASSET = ("assets", "text_tokenizer", "tokenizer.json")


def asset_text() -> str:
    """The shipped ``tokenizer.json`` (read through importlib.resources, so it works from a wheel)."""
    ref = resources.files("vlakit").joinpath(*ASSET)
    try:
        return ref.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TextTokenizerError(f"the shipped text tokenizer vlakit/{'/'.join(ASSET)} is missing from "
                                 "this installation; rebuild it with "
                                 "`python -m vlakit.components.text.build_asset`") from None


class TabletopBpeConfig(ComponentConfig):
    """The shipped tabletop tokenizer (no options)."""

    type: Literal["tabletop_bpe"] = "tabletop_bpe"

    def build(self, **_context: Any) -> TabletopBpeTokenizer:
        return TabletopBpeTokenizer()


@TEXT_TOKENIZERS.register
class TabletopBpeTokenizer(TokenizersTextTokenizer):
    """Byte-level BPE over the tabletop world's language, shipped as a package asset."""

    Config = TabletopBpeConfig

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        self.config = TabletopBpeConfig()
        super().__init__(tokenizer=Tokenizer.from_str(asset_text()), bos_token=BOS, eos_token=EOS,
                         pad_token=PAD, source=f"vlakit/{'/'.join(ASSET)}")
