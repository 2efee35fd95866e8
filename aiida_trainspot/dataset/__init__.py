"""Datasets of atomic configurations: frames, columnar blocks and the HDF5 store (pure kernels, no AiiDA)."""

from .batch import DEFAULT_BLOCK_FRAMES, FrameBatch, validate_batch
from .convert import (
    MACE_KEYS,
    METATRAIN_KEYS,
    LabelKeys,
    batch_from_atoms,
    frame_from_atoms,
    frame_to_atoms,
    iter_atoms_from_batch,
    iter_batches_from_atoms,
)
from .extxyz import iter_frames_from_extxyz, write_extxyz
from .frame import SPLITS, Frame, validate_frame
from .query import query_mask, validate_query
from .store import CorruptDatasetError, DatasetReader, DatasetWriter

__all__ = (
    'DEFAULT_BLOCK_FRAMES',
    'MACE_KEYS',
    'METATRAIN_KEYS',
    'SPLITS',
    'CorruptDatasetError',
    'DatasetReader',
    'DatasetWriter',
    'Frame',
    'FrameBatch',
    'LabelKeys',
    'batch_from_atoms',
    'frame_from_atoms',
    'frame_to_atoms',
    'iter_atoms_from_batch',
    'iter_batches_from_atoms',
    'iter_frames_from_extxyz',
    'query_mask',
    'validate_batch',
    'validate_frame',
    'validate_query',
    'write_extxyz',
)
