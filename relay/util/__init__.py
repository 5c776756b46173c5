"""Utilities at the bottom of the layers: errors, time, JSON, safe text, small values. They import
nothing else of relay."""
