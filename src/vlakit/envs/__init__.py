"""vlakit.envs."""
