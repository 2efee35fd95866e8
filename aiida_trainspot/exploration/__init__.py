"""Exploration kernels (pure, no AiiDA): the grid of MD runs and the inputs and outputs of the ``lammps`` driver."""
