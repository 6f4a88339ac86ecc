"""Built-in state encoders (importing this package registers them)."""

from vlakit.components.state import continuous_token, discrete_text  # noqa: F401
