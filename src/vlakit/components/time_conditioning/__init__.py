"""vlakit.components.time_conditioning."""
