"""The dry-run simulator: replays a trace through the decision core on a simulated clock."""
