"""How well "disagreement above threshold" predicts "true error above tolerance" (pure numpy, no AiiDA).

Seed 001 Eqs. 3–4: a frame is a *positive* if its true error exceeds the tolerance and is *flagged* if its disagreement
exceeds the threshold. ``TPR = TP / (TP + FN)`` is the share of the badly predicted frames that the disagreement
catches; ``PPV = TP / (TP + FP)`` the share of the flagged frames that were indeed badly predicted. A rate whose
denominator is zero (no positive frame, or no flagged frame) is undefined and reported as ``None``, never as 0 or 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class DetectionScores:
    """Confusion counts of flagged against badly predicted frames, with the TPR and PPV derived from them."""

    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def tpr(self) -> float | None:
        """Return the true positive rate (recall), or ``None`` without any badly predicted frame."""
        positives = self.true_positives + self.false_negatives
        return self.true_positives / positives if positives else None

    @property
    def ppv(self) -> float | None:
        """Return the positive predictive value (precision), or ``None`` without any flagged frame."""
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else None

    def as_dict(self) -> dict[str, int | float | None]:
        """Return the counts and the two rates as a JSON-serialisable mapping."""
        return {**asdict(self), 'tpr': self.tpr, 'ppv': self.ppv}


def detection_scores(
    disagreement: np.ndarray, error: np.ndarray, threshold: float, tolerance: float
) -> DetectionScores:
    """Return the confusion counts of ``disagreement > threshold`` against ``error > tolerance``.

    Frames where either value is not finite (e.g. a frame without stress) are left out of every count.
    """
    disagreement = np.asarray(disagreement, dtype=np.float64)
    error = np.asarray(error, dtype=np.float64)
    if disagreement.shape != error.shape:
        raise ValueError(f'disagreement {disagreement.shape} and error {error.shape} must have the same shape')
    finite = np.isfinite(disagreement) & np.isfinite(error)
    flagged = disagreement[finite] > threshold
    positive = error[finite] > tolerance
    return DetectionScores(
        true_positives=int(np.count_nonzero(flagged & positive)),
        false_positives=int(np.count_nonzero(flagged & ~positive)),
        false_negatives=int(np.count_nonzero(~flagged & positive)),
        true_negatives=int(np.count_nonzero(~flagged & ~positive)),
    )
