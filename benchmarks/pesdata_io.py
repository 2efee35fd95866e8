"""PESData against ASE's extended XYZ: write and read speed, and peak memory when streaming.

    python benchmarks/pesdata_io.py [--frames 100000] [--atoms 64]

Both formats get the same frames (a list of ``ase.Atoms`` with energy, forces and stress in a single-point calculator,
from a seeded generator) and give back ``ase.Atoms``; PESData is also read as columns (its blocks). Both are warmed
up first on two frames, untimed (imports; the first node loads AiiDA's storage, about a second, once per process).
PESData is written into a stored node of a throw-away SQLite profile, so its time includes copying the file into the
AiiDA repository. Peak memory (``VmHWM``) is measured in a fresh process per size, streaming both ways, to show that
it does not grow with the dataset.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator


def random_frames(count: int, natoms: int, seed: int = 0) -> Iterator[Atoms]:
    """Yield ``count`` labelled frames of ``natoms`` carbon atoms in a 10 Å box."""
    rng = np.random.default_rng(seed)
    numbers = np.full(natoms, 6)
    for _ in range(count):
        atoms = Atoms(numbers=numbers, positions=rng.random((natoms, 3)) * 10, cell=np.eye(3) * 10, pbc=True)
        stress = rng.normal(size=6) * 1e-2
        atoms.calc = SinglePointCalculator(
            atoms, energy=rng.normal(), forces=rng.normal(size=(natoms, 3)), stress=stress
        )
        yield atoms


def load_throwaway_profile(folder: Path) -> None:
    """Create and load an SQLite profile without broker in ``folder``."""
    os.environ['AIIDA_PATH'] = str(folder)
    command = [sys.executable, '-m', 'aiida', 'presto', '--profile-name', 'bench', '--no-broker', '--non-interactive']
    subprocess.run(command, check=True, capture_output=True)
    from aiida import load_profile

    load_profile('bench', allow_switch=True)


def timed(function) -> tuple[float, object]:
    """Return the wall time of calling ``function`` and its result."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def warm_up(folder: Path) -> None:
    """Write and read two frames both ways, untimed: imports, and AiiDA's storage (loaded by the first node)."""
    import ase.io

    from aiida_trainspot.data import PESData

    structures = list(random_frames(2, 4, seed=1))
    ase.io.write(folder / 'warm_up.xyz', structures, format='extxyz')
    assert len(ase.io.read(folder / 'warm_up.xyz', index=':', format='extxyz')) == 2
    assert len(PESData.from_ase(structures).store().to_ase()) == 2


def compare_speed(frames: int, natoms: int, folder: Path) -> None:
    """Time writing and reading ``frames`` frames with PESData and with extxyz; print times and ratios."""
    import ase.io

    from aiida_trainspot.data import PESData

    xyz = folder / 'frames.xyz'
    warm_up(folder)
    structures = list(random_frames(frames, natoms))
    write_xyz, _ = timed(lambda: ase.io.write(xyz, structures, format='extxyz'))
    write_pes, node = timed(lambda: PESData.from_ase(structures).store())
    structures.clear()
    read_xyz, count_xyz = timed(lambda: sum(1 for _ in ase.io.iread(xyz, index=':', format='extxyz')))
    read_pes, count_pes = timed(lambda: sum(1 for _ in node.iter_atoms()))
    read_columns, count_columns = timed(lambda: sum(len(batch) for batch in node.iter_batches()))
    assert count_xyz == count_pes == count_columns == frames
    size_xyz, size_pes = xyz.stat().st_size / 1e6, node.base.repository.get_object_size(PESData.FILENAME) / 1e6
    print(f'{frames} frames of {natoms} atoms            extxyz    PESData   speed-up')
    print(f'write (ase.Atoms in)              {write_xyz:8.1f} s {write_pes:8.1f} s   {write_xyz / write_pes:6.1f}x')
    print(f'read (ase.Atoms out)              {read_xyz:8.1f} s {read_pes:8.1f} s   {read_xyz / read_pes:6.1f}x')
    print(
        f'read (columns, PESData blocks)    {read_xyz:8.1f} s {read_columns:8.1f} s   {read_xyz / read_columns:6.1f}x'
    )
    print(f'file size                         {size_xyz:7.0f} MB {size_pes:7.0f} MB   {size_xyz / size_pes:6.1f}x')


def peak_memory_child(frames: int, natoms: int) -> None:
    """Stream ``frames`` frames into a PESData node and back; print the peak resident memory in MB."""
    from aiida import load_profile

    from aiida_trainspot.data import PESData

    load_profile('bench', allow_switch=True)

    node = PESData.from_ase(random_frames(frames, natoms)).store()
    assert sum(1 for _ in node.iter_atoms()) == frames
    print(peak_resident_mb())


def peak_resident_mb() -> float:
    """Return this process's peak resident memory in MB.

    Linux's ``VmHWM`` counts this program only; ``ru_maxrss`` also keeps the peak of the parent process that
    forked it (before ``exec``), which hid the child's own figure behind the parent's.
    """
    try:
        status = Path('/proc/self/status').read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = next(line for line in status.splitlines() if line.startswith('VmHWM:'))
    return int(line.split()[1]) / 1024


def compare_memory(sizes: list[int], natoms: int, folder: Path) -> None:
    """Print the peak memory of streaming datasets of each size, each in a fresh process."""
    print(f'\npeak memory, streaming write + read of {natoms}-atom frames (fresh process each)')
    peaks = []
    for frames in sizes:
        command = [sys.executable, __file__, '--memory-child', str(frames), '--atoms', str(natoms)]
        completed = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ})
        peaks.append(float(completed.stdout.split()[-1]))
        raw = frames * natoms * 3 * 8 * 2 / 1e6
        print(f'{frames:>8} frames: peak {peaks[-1]:7.0f} MB  (positions + forces alone would be {raw:6.0f} MB)')
    print(f'peak ratio largest / smallest dataset: {peaks[-1] / peaks[0]:.2f} for {sizes[-1] / sizes[0]:.0f}x frames')


def main() -> None:
    """Parse the arguments and run the comparisons."""
    parser = argparse.ArgumentParser(description='PESData against extxyz: speed and memory.')
    parser.add_argument('--frames', type=int, default=100_000, help='frames in the speed comparison')
    parser.add_argument('--atoms', type=int, default=64, help='atoms per frame')
    parser.add_argument('--memory-child', type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        peak_memory_child(args.memory_child, args.atoms)
        return
    with tempfile.TemporaryDirectory() as folder:
        load_throwaway_profile(Path(folder))
        compare_speed(args.frames, args.atoms, Path(folder))
        compare_memory([args.frames // 10, args.frames // 3, args.frames], args.atoms, Path(folder))


if __name__ == '__main__':
    main()
