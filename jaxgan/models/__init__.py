"""Flax linen modules and shape helpers only."""
