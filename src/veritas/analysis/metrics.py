"""Classification metrics for risk scores in pure Python: ROC-AUC, PR-AUC, Brier, precision@k.

y are 0/1 outcomes (1 = the event, e.g. withdrawal) and p the predicted scores or
probabilities, in the same order. Ties in p are treated evenly (as if broken at random), so
no metric depends on the input order.
"""

import math
from collections.abc import Sequence
from itertools import groupby


def roc_auc(y: Sequence[int], p: Sequence[float]) -> float:
    """Return the probability that a random positive scores above a random negative (ties half)."""
    _check_lengths(y, p)
    n_pos, n_neg = _class_counts(y)
    # Mann-Whitney: sum of the positives' ranks, with tied scores sharing their mean rank.
    rank_sum = 0.0
    position = 0
    for _, group in groupby(sorted(zip(p, y)), key=lambda pair: pair[0]):
        labels = [label for _, label in group]
        mean_rank = position + (len(labels) + 1) / 2
        rank_sum += mean_rank * sum(labels)
        position += len(labels)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def pr_auc(y: Sequence[int], p: Sequence[float]) -> float:
    """Return average precision: precision at each distinct threshold weighted by recall gained."""
    _check_lengths(y, p)
    n_pos, _ = _class_counts(y)
    tp = seen = 0
    total = 0.0
    for _, group in groupby(sorted(zip(p, y), reverse=True), key=lambda pair: pair[0]):
        labels = [label for _, label in group]
        gained = sum(labels)
        tp += gained
        seen += len(labels)
        total += (gained / n_pos) * (tp / seen)
    return total


def brier(y: Sequence[int], p: Sequence[float]) -> float:
    """Return the mean squared difference between probabilities and outcomes."""
    _check_lengths(y, p)
    return sum((pi - yi) ** 2 for yi, pi in zip(y, p)) / len(y)


def precision_at_fraction(y: Sequence[int], p: Sequence[float], fraction: float) -> float:
    """Return the share of positives among the top ceil(fraction * n) scores."""
    _check_lengths(y, p)
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    k = math.ceil(round(fraction * len(y), 9))  # round first: 0.3 * 10 is 3.0000000000000004
    hits = 0.0
    taken = 0
    for _, group in groupby(sorted(zip(p, y), reverse=True), key=lambda pair: pair[0]):
        labels = [label for _, label in group]
        room = k - taken
        if room <= 0:
            break
        # A tie group straddling the cut contributes its expected positives, not an arbitrary few.
        share = min(1.0, room / len(labels))
        hits += share * sum(labels)
        taken += min(room, len(labels))
    return hits / k


def _class_counts(y: Sequence[int]) -> tuple[int, int]:
    n_pos = sum(1 for label in y if label)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need at least one positive and one negative outcome")
    return n_pos, n_neg


def _check_lengths(y: Sequence[int], p: Sequence[float]) -> None:
    if len(y) != len(p) or not y:
        raise ValueError("y and p must be non-empty and of equal length")
