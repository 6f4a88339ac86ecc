"""Registered data sources. Importing this package registers the built-ins."""

from vlakit.data.sources import lerobot, tabletop, vqa  # noqa: F401  (registration side effects)
