"""Committee uncertainty: disagreement metrics, calibration, thresholds and selection (pure kernels, no AiiDA)."""
