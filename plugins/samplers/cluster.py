"""Placeholder for the cluster plugin (being written)."""
