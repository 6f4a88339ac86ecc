"""Errors of the data pipeline. Each names the file (or source) and the field at fault."""

from __future__ import annotations

from vlakit.errors import VlakitError


class DatasetError(VlakitError):
    """A dataset on disk is missing files, has mismatched shapes, lacks a needed feature, or has bad
    statistics. Raised before training starts."""


class NormStatsError(VlakitError):
    """Normalisation statistics are missing, non-finite, or do not match the data."""
