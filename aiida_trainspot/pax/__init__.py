"""Parallel active exploration (aims-PAX): scheduling kernels and their discrete-event simulation (no AiiDA)."""
