"""Event-driven autoscaler for model-serving deployments.

The decision core (``autoscaler.core``) is pure: it is handed a snapshot that carries ``now``
and returns a decision. The simulator (``autoscaler.sim``) and, later, the live daemon drive
that same core through different adapters.
"""

__version__ = "0.1.0"
