"""aiida-trainspot: machine-learning interatomic potentials by active learning, with AiiDA provenance."""

__version__ = '0.1.0'
