"""Training of interatomic potentials: hyperparameter schemas, trainer inputs and trainer outputs (no AiiDA)."""
