"""The pure decision core.

Nothing in this package performs I/O or reads a clock: every function is handed the time
(``now``, unix seconds) and the facts it needs. The simulator and the live daemon drive the
very same code; an import-linter contract and ``tests/core/test_purity.py`` keep it so.
"""
