"""Built-in policies. Each module exports ``SPEC``; the registry (``autoscaler.registry``)
collects them together with plug-ins."""
