"""Policy-file models (pure data), the loader that validates files at the boundary, and the
registry that finds a policy by the name a file gives."""
