"""Environments. Importing this package registers the built-in ``tabletop`` env."""

from vlakit.envs import tabletop  # noqa: F401  (registers TabletopEnv)
