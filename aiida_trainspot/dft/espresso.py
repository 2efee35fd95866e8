"""Quantum ESPRESSO results in our units and sign convention."""

from __future__ import annotations

import numpy as np
from ase.units import GPa


def stress_from_gpa(stress_gpa: np.ndarray) -> np.ndarray:
    """Return a pw.x stress tensor given in GPa (as aiida-quantumespresso outputs it) in eV/Å³ with ASE's sign.

    pw.x reports the stress with the sign of a pressure (positive when the cell wants to expand, P = tr/3); ASE and
    every MLIP trainer we drive use ``stress = (1/V) dE/dstrain``, the opposite sign.
    """
    return -np.asarray(stress_gpa, dtype=float).reshape(3, 3) * GPa
