"""vlakit: a PyTorch toolkit for vision-language-action (VLA) robot policies.

The promised public API is small and re-exported here lazily, so that ``import vlakit``
(and ``vlakit --help``) never imports torch:

- :func:`load_recipe` -- load and validate a recipe by path or shipped name.
- :func:`build_policy` -- build a :class:`~vlakit.policy.VLAPolicy` from a recipe.
- :func:`load_policy` -- load a saved policy folder.

Everything else is reachable but not promised.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_recipe", "build_policy", "load_policy"]


def __getattr__(name: str) -> Any:
    if name == "load_recipe":
        from vlakit.recipe.load import load_recipe

        return load_recipe
    if name == "build_policy":
        from vlakit.recipe.build import build_policy

        return build_policy
    if name == "load_policy":
        from vlakit.policy_io import load_policy

        return load_policy
    raise AttributeError(f"module 'vlakit' has no attribute {name!r}")
