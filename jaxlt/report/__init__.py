"""Figures and the Markdown report of the analysis stage (CPU only)."""
