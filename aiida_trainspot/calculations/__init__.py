"""Calculation jobs (input writers only) and calculation functions (every derived dataset or model)."""
