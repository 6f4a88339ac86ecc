"""Built-in action tokenizers: ``fast`` (DCT + BPE) and ``binning`` (uniform bins).

Importing this package registers both in :data:`vlakit.registry.ACTION_TOKENIZERS`.
"""

from vlakit.components.action_tokenizers import binning, fast
from vlakit.components.action_tokenizers._common import load_action_tokenizer
from vlakit.components.action_tokenizers.binning import BinningActionTokenizer, BinningConfig
from vlakit.components.action_tokenizers.fast import FastActionTokenizer, FastConfig

__all__ = ["BinningActionTokenizer", "BinningConfig", "FastActionTokenizer", "FastConfig", "binning", "fast",
           "load_action_tokenizer"]
