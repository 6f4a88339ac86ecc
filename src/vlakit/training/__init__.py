"""vlakit.training."""
