"""vlakit.testing."""
