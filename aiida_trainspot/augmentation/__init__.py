"""Dataset augmentation: pure kernels on ``ase.Atoms`` (no AiiDA) that make new structures from a handful of inputs.

One module per theme: :mod:`.geometry` (heights, neighbours, vacuum for any cell), :mod:`.supercell`,
:mod:`.distortion` (strain, rattle, vacancies), :mod:`.clusters`, :mod:`.slabs` and :mod:`.chemistry` (isolated atoms,
species swaps, alloys). Each operation's defaults and validation live in :mod:`.parameters`. Kernels take a
``numpy.random.Generator`` where they draw and never modify the ``Atoms`` they are given.
"""

from .chemistry import (
    alloy_compositions,
    check_swappable,
    isolated_atoms,
    make_alloy,
    site_counts,
    swap_count,
    swap_species,
)
from .clusters import grow_cluster, random_clusters
from .distortion import deform, distortions, rattle, remove_random_atoms, strain_deformation
from .errors import NotApplicableError
from .geometry import (
    cell_problem,
    closest_contact,
    contact_problem,
    nearest_neighbour_distances,
    normal_extents,
    pad_vacuum,
    periodic_heights,
)
from .parameters import (
    AlloyParameters,
    ClusterParameters,
    DistanceFilterParameters,
    DistortionParameters,
    SlabParameters,
    SubstitutionParameters,
    SupercellParameters,
    parameters_as_dict,
    parameters_from_mapping,
)
from .seeds import operation_seed, structure_rng
from .slabs import cut_slab, slab_thickness, slabs
from .supercell import replicate, supercell_repeats

__all__ = (
    'AlloyParameters',
    'ClusterParameters',
    'DistanceFilterParameters',
    'DistortionParameters',
    'NotApplicableError',
    'SlabParameters',
    'SubstitutionParameters',
    'SupercellParameters',
    'alloy_compositions',
    'cell_problem',
    'check_swappable',
    'closest_contact',
    'contact_problem',
    'cut_slab',
    'deform',
    'distortions',
    'grow_cluster',
    'isolated_atoms',
    'make_alloy',
    'nearest_neighbour_distances',
    'normal_extents',
    'operation_seed',
    'pad_vacuum',
    'parameters_as_dict',
    'parameters_from_mapping',
    'periodic_heights',
    'random_clusters',
    'rattle',
    'remove_random_atoms',
    'replicate',
    'site_counts',
    'slab_thickness',
    'slabs',
    'strain_deformation',
    'structure_rng',
    'supercell_repeats',
    'swap_count',
    'swap_species',
)
