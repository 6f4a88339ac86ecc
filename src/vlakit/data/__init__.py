"""vlakit.data."""
