"""vlakit.evaluation."""
