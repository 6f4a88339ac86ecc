"""Built-in action heads (importing this package registers them)."""

from vlakit.components.action_heads import fast_autoregressive, flow_matching  # noqa: F401
