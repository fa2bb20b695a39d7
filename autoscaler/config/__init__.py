"""Policy-file models (pure data) and the loader that validates files at the boundary."""
