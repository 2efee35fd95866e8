import numpy as np
import pytest

from aiida_trainspot.uncertainty.scores import detection_scores

pytestmark = pytest.mark.kernel


def test_counts_and_rates_on_a_hand_counted_case():
    #               TP    TP   FP   FN   TN   TN   FN   not finite
    disagreement = [0.9, 0.6, 0.7, 0.1, 0.2, 0.0, 0.5, np.nan]
    error = [2.0, 1.5, 0.5, 1.2, 0.1, 0.9, 1.0, 3.0]
    scores = detection_scores(np.array(disagreement), np.array(error), threshold=0.5, tolerance=0.9)
    assert (scores.true_positives, scores.false_positives, scores.false_negatives, scores.true_negatives) == (
        2,
        1,
        2,
        2,
    )
    assert scores.tpr == pytest.approx(2 / 4)
    assert scores.ppv == pytest.approx(2 / 3)


def test_perfect_detector_and_undefined_rates():
    error = np.array([0.1, 0.2, 3.0, 4.0])
    perfect = detection_scores(error / 10, error, threshold=0.1, tolerance=1.0)
    assert (perfect.tpr, perfect.ppv) == (1.0, 1.0)
    nothing_bad = detection_scores(np.array([0.5, 0.0]), np.array([0.1, 0.1]), threshold=0.2, tolerance=1.0)
    assert nothing_bad.tpr is None and nothing_bad.ppv == 0.0
    nothing_flagged = detection_scores(np.array([0.0, 0.1]), np.array([5.0, 0.1]), threshold=0.2, tolerance=1.0)
    assert nothing_flagged.ppv is None and nothing_flagged.tpr == 0.0
    empty = detection_scores(np.zeros(0), np.zeros(0), threshold=0.2, tolerance=1.0).as_dict()
    assert empty == {
        'true_positives': 0,
        'false_positives': 0,
        'false_negatives': 0,
        'true_negatives': 0,
        'tpr': None,
        'ppv': None,
    }


def test_shapes_must_match():
    with pytest.raises(ValueError, match='same shape'):
        detection_scores(np.zeros(2), np.zeros(3), threshold=0.1, tolerance=0.1)
