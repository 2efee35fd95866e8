"""Calculation functions: each derived dataset or model is made by one, so provenance shows how it came to be."""
