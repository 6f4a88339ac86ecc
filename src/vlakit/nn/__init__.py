"""vlakit.nn."""
