"""Datasets of atomic configurations: frames, columnar blocks and the HDF5 store (pure kernels, no AiiDA)."""

from .batch import FrameBatch
from .convert import (
    MACE_KEYS,
    METATRAIN_KEYS,
    LabelKeys,
    frame_from_atoms,
    frame_to_atoms,
    iter_frames_from_extxyz,
    write_extxyz,
)
from .frame import SPLITS, Frame, validate_frame
from .query import query_mask, validate_query
from .store import CorruptDatasetError, DatasetReader, DatasetWriter

__all__ = (
    'MACE_KEYS',
    'METATRAIN_KEYS',
    'SPLITS',
    'CorruptDatasetError',
    'DatasetReader',
    'DatasetWriter',
    'Frame',
    'FrameBatch',
    'LabelKeys',
    'frame_from_atoms',
    'frame_to_atoms',
    'iter_frames_from_extxyz',
    'query_mask',
    'validate_frame',
    'validate_query',
    'write_extxyz',
)
