"""vlakit.components."""
