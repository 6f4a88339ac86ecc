"""vlakit-cuda: the ``cuda`` compute backend plugin (entry point group ``vlakit.backends``)."""

__version__ = "0.1.0"
