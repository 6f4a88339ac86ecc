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

import pytest


@pytest.fixture(autouse=True)
def _wide_cli_console(monkeypatch):
    """The CLI's rich consoles take the terminal width once, at import, so a narrow terminal (or a CI
    runner without one) would cut table cells the tests look for. Tests see a fixed, wide console."""
    from vlakit.cli import _common

    for con in (_common.console, _common.err_console):
        monkeypatch.setattr(con, "width", 200)
