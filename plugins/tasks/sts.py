"""Placeholder for the stsb, stsb-unsup, sick-r, sts12..sts16 plugin (being written)."""
