"""Prompt cleaning shared by the state encoders."""

from __future__ import annotations


def clean_task(task: str) -> str:
    """openpi's prompt cleaning: strip, underscores and newlines become spaces."""
    return task.strip().replace("_", " ").replace("\n", " ")
