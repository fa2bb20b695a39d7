"""Event-driven autoscaler for model-serving deployments.

The decision core (``autoscaler.core``) is pure: it is handed a snapshot that carries ``now``
and returns a decision. The simulator (``autoscaler.sim``) and, later, the live daemon drive
that same core through different adapters.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    # One source of truth: the installed distribution's version (pyproject.toml's), so that
    # `--version`, `autoscaler_build_info` and the image tag cannot drift apart.
    __version__ = version("autoscaler")
except PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"
