"""Placeholder for the hcl plugin (being written)."""
