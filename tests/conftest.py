"""Shared fixtures. Tests run on CPU with tiny configs; torch uses few threads so the suite is
predictable on a 2-core machine."""

from __future__ import annotations

import os

os.environ.setdefault("VLAKIT_TEST", "1")

try:
    import torch

    torch.set_num_threads(1)  # tiny models: threading overhead dominates on a busy 2-core machine
except ImportError:  # pragma: no cover
    pass
