"""vlakit.components.language."""
