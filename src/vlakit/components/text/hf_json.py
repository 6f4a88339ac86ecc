"""``hf_json``: any ``tokenizer.json`` from a local path (e.g. a PaliGemma tokenizer you already
have). Never touches the network."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vlakit.components.text._base import TokenizersTextTokenizer, read_tokenizer_file
from vlakit.config import ComponentConfig
from vlakit.registry import TEXT_TOKENIZERS


class HfJsonConfig(ComponentConfig):
    """A local ``tokenizer.json`` (file, or folder holding one) with named special tokens.

    PaliGemma's file uses ``<bos>``, ``<eos>``, ``<pad>`` (the defaults here).
    """

    type: Literal["hf_json"] = "hf_json"
    path: str = Field(description="tokenizer.json, or a folder that holds one")
    bos_token: str = "<bos>"
    eos_token: str = "<eos>"
    pad_token: str = "<pad>"

    def build(self, **_context: Any) -> HfJsonTextTokenizer:
        return HfJsonTextTokenizer(config=self)


@TEXT_TOKENIZERS.register
class HfJsonTextTokenizer(TokenizersTextTokenizer):
    """Text tokenizer loaded from a local ``tokenizer.json``."""

    Config = HfJsonConfig

    @classmethod
    def test_config(cls) -> HfJsonConfig:
        """For the conformance suite: the shipped tabletop ``tokenizer.json`` loaded by path."""
        from importlib import resources

        from vlakit.components.text.tabletop_bpe import ASSET

        return HfJsonConfig(path=str(resources.files("vlakit").joinpath(*ASSET)))

    def __init__(self, *, config: HfJsonConfig) -> None:
        self.config = config
        path = Path(config.path).expanduser()
        super().__init__(tokenizer=read_tokenizer_file(path), bos_token=config.bos_token,
                         eos_token=config.eos_token, pad_token=config.pad_token, source=str(path))
