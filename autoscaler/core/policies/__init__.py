"""Built-in policies. Each module exports ``SPEC``; the registry (``autoscaler.config.registry``)
collects them together with plug-ins."""
