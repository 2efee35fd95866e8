"""The active-learning campaign's own rules: its settings and when it stops (pure, no AiiDA)."""
