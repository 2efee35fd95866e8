"""Programs that calculation jobs run on the compute node, installed as console scripts (pure, no AiiDA)."""
