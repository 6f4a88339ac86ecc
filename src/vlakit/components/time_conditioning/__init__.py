"""Built-in time conditionings (importing this package registers them)."""

from vlakit.components.time_conditioning import adarms, concat_mlp  # noqa: F401
