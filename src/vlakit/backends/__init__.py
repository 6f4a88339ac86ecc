"""vlakit.backends."""
