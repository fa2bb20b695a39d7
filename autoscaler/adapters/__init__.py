"""Adapters between the outside world and the daemon: event sources, state stores and
actuators. The decision core never imports them (an import-linter contract)."""
