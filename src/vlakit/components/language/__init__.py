"""Built-in language backbones (importing this package registers them)."""

from vlakit.components.language import gemma  # noqa: F401
