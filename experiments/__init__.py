"""Thin experiment scripts: ``python -m experiments.NAME --help``."""
