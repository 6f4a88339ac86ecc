"""Built-in vision encoders (importing this package registers them)."""

from vlakit.components.vision import conv, siglip  # noqa: F401
