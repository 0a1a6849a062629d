"""Placeholder for the pairwise-logistic plugin (being written)."""
