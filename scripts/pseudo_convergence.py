"""Cutoff convergence of the carbon pseudopotential with Debian's pw.x (figures in docs/topics/pseudopotentials.md).

Run with the package's environment: `python scripts/pseudo_convergence.py [workdir]`. It prints, per ecutwfc, the
differences to the highest cutoff of the energy per atom, the largest force component and the pressure.
"""

import os
import sys

import numpy as np
from ase.build import bulk
from ase.calculators.espresso import Espresso, EspressoProfile
from ase.units import GPa

PSEUDO = 'C.pbe-n-kjpaw_psl.0.1.UPF'
CUTOFFS = (30, 35, 40, 45, 50, 55, 60, 80)


def main(workdir: str) -> None:
    """Run the scan and print the table."""
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    atoms = bulk('C', 'diamond', a=3.50)
    atoms.rattle(0.05, seed=1)
    results = []
    for ecutwfc in CUTOFFS:
        atoms.calc = Espresso(
            profile=EspressoProfile(command='pw.x', pseudo_dir='/usr/share/espresso/pseudo'),
            directory=os.path.join(workdir, f'ecut{ecutwfc}'),
            pseudopotentials={'C': PSEUDO},
            kpts=(6, 6, 6),
            input_data={
                'control': {'tprnfor': True, 'tstress': True},
                'system': {'ecutwfc': ecutwfc, 'ecutrho': 8 * ecutwfc, 'occupations': 'smearing'}
                | {'smearing': 'cold', 'degauss': 0.02},
            },
        )
        pressure = -np.trace(atoms.get_stress(voigt=False)) / 3 / GPa
        results.append((ecutwfc, atoms.get_potential_energy() / len(atoms), atoms.get_forces(), pressure))
    _, energy_ref, forces_ref, pressure_ref = results[-1]
    print('ecutwfc(Ry)  dE(meV/atom)  max dF(meV/A)  dP(GPa)')
    for ecutwfc, energy, forces, pressure in results:
        print(
            f'{ecutwfc:>11}  {1000 * (energy - energy_ref):>12.2f}  {1000 * np.abs(forces - forces_ref).max():>13.1f}'
            f'  {pressure - pressure_ref:>7.2f}'
        )


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'pseudo-convergence')
