"""vlakit.components.text."""
