"""vlakit.cli."""
