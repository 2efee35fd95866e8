"""A stand-in for the FHI-aims binary, which cannot run here: it checks its inputs and prints a real FHI-aims output.

Run in the working directory of an ``AimsCalculation``: it checks that ``control.in`` and ``geometry.in`` exist, that
``control.in`` has a species block for every element of ``geometry.in`` and a ``k_grid`` exactly when the geometry is
periodic, then prints to its standard output (``aims.out``) one of the real FHI-aims outputs that ASE ships
(``ase/test/testdata/aims``), chosen by the formula: ``H2O`` → ``singlepoint.out``, ``Si2`` → the final step of
``relax.out``; any other structure gets ``singlepoint.out`` cut where its SCF converged, with FHI-aims' own message of
an SCF cycle that did not converge. A wrong input makes it exit with status 1 and say why on its standard error.
"""

import re
import sys
from collections import Counter
from pathlib import Path

import ase

OUTPUTS = Path(ase.__file__).parent / 'test' / 'testdata' / 'aims'
BY_FORMULA = {'H2O': 'singlepoint.out', 'Si2': 'relax.out'}


def formula(elements: list[str]) -> str:
    """Return the Hill-like formula of ``elements``: symbols in alphabetical order, counts above one."""
    return ''.join(f'{symbol}{count if count > 1 else ""}' for symbol, count in sorted(Counter(elements).items()))


def check_inputs(control: str, geometry: str) -> list[str]:
    """Return the elements of ``geometry``; exit with a message if the inputs do not belong together."""
    elements = [line.split()[-1] for line in geometry.splitlines() if line.split()[:1] == ['atom']]
    species = set(re.findall(r'^\s*species\s+(\S+)', control, flags=re.MULTILINE))
    if not elements or set(elements) - species:
        sys.exit(f'geometry.in has elements {sorted(set(elements))}, control.in species blocks for {sorted(species)}')
    periodic = 'lattice_vector' in geometry
    if periodic != bool(re.search(r'^k_grid\s', control, flags=re.MULTILINE)):
        sys.exit(f'a {"periodic" if periodic else "non-periodic"} geometry.in needs {"a" if periodic else "no"} k_grid')
    if 'compute_forces' not in control:
        sys.exit('control.in does not ask for forces')
    return elements


def output_for(elements: list[str]) -> str:
    """Return the FHI-aims output printed for a structure of ``elements``."""
    name = BY_FORMULA.get(formula(elements))
    if name is not None:
        return (OUTPUTS / name).read_text()
    text = (OUTPUTS / 'singlepoint.out').read_text()
    return text[: text.index('Self-consistency cycle converged.')] + '  *** scf_solver: SCF cycle not converged.\n'


def main() -> None:
    """Check the inputs in the working directory and print the output."""
    for name in ('control.in', 'geometry.in'):
        if not Path(name).is_file():
            sys.exit(f'{name} is missing')
    elements = check_inputs(Path('control.in').read_text(), Path('geometry.in').read_text())
    sys.stdout.write(output_for(elements))


if __name__ == '__main__':
    main()
