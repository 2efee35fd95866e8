"""DFT codes' units and conventions, as pure functions (no AiiDA)."""
