"""Figures: one module per figure family; each function takes data and returns a matplotlib Figure."""
