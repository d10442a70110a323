"""Reusable model layers: CRF decoder, visual prefix, attention blocks."""
