"""Regenerate (or check) the shipped text tokenizer ``vlakit/assets/text_tokenizer/tokenizer.json``.

    python -m vlakit.components.text.build_asset            # rewrite the asset
    python -m vlakit.components.text.build_asset --check    # exit 1 if the asset is stale
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from vlakit.components.text.corpus import tabletop_corpus
from vlakit.components.text.tabletop_bpe import ASSET, SPECIAL_TOKENS

DEFAULT_VOCAB_SIZE = 1024


def train_tabletop_tokenizer(lines: list[str], *, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Any:
    """Byte-level BPE over ``lines`` with ``<pad>``, ``<bos>``, ``<eos>`` as ids 0, 1, 2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return tok


def build_asset_text(*, vocab_size: int = DEFAULT_VOCAB_SIZE, seed: int = 0) -> str:
    """The ``tokenizer.json`` text the asset should hold."""
    return train_tabletop_tokenizer(tabletop_corpus(seed=seed), vocab_size=vocab_size).to_str(pretty=True) + "\n"


def default_asset_path() -> Path:
    return Path(str(resources.files("vlakit").joinpath(*ASSET)))


def main(argv: list[str] | None = None) -> int:
    from vlakit.io import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the package asset)")
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    parser.add_argument("--check", action="store_true", help="compare with the existing file instead")
    args = parser.parse_args(argv)
    out = args.out or default_asset_path()
    text = build_asset_text(vocab_size=args.vocab_size)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current != text:
            print(f"{out} is stale or missing; rerun without --check", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    atomic_write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
