"""vlakit.components.vision."""
