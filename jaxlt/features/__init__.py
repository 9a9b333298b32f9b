"""Language and language-pair features of the analysis stage (CPU only)."""
