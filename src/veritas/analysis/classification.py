"""Classification metrics for risk scores in pure Python: ROC-AUC, PR-AUC, Brier, precision@k,
the ROC-AUC within groups (e.g. courses), a reliability table, and 95 % intervals for how far a
subgroup's ROC-AUC and calibration lie from the whole's.

y are 0/1 outcomes (1 = the event, e.g. withdrawal) and p the predicted scores or
probabilities, in the same order. Ties in p are treated evenly (as if broken at random), so
no metric depends on the input order.
"""

import math
from bisect import bisect_left, bisect_right
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


def subgroup_auc_gap(
    y: Sequence[int], p: Sequence[float], member: Sequence[bool], z: float = 1.96
) -> tuple[float, float, float]:
    """Return (gap, low, high): the members' ROC-AUC minus the whole's, with a normal interval.

    The variance is DeLong's (1988) for correlated AUCs, applied to a subgroup. Each outcome's
    placement value (the share of the other class it is ranked correctly against, ties half)
    gives its influence on each AUC; the gap's variance sums, over outcomes, the square of the
    difference of its two influences. The group is part of the whole, so the two AUCs move
    together, and two separate intervals would overstate how uncertain the gap is.
    Deterministic and O(n log n), unlike a bootstrap. Needs both outcomes inside the group.
    """
    _check_lengths(y, p)
    if len(member) != len(y):
        raise ValueError("member must be as long as y")
    inside = [i for i, m in enumerate(member) if m]
    labels = [int(bool(label)) for label in y]
    whole = _placements(labels, p)
    group: list[float | None] = [None] * len(y)
    for i, value in zip(inside, _placements([labels[i] for i in inside], [p[i] for i in inside])):
        group[i] = value
    auc_whole = _mean_of_positives(labels, whole)
    auc_group = _mean_of_positives(labels, group)
    n_whole = [labels.count(0), labels.count(1)]
    n_group = [sum(1 for i in inside if labels[i] == c) for c in (0, 1)]
    squares = [0.0, 0.0]
    for label, in_whole, in_group in zip(labels, whole, group):
        influence = -(in_whole - auc_whole) / n_whole[label]
        if in_group is not None:
            influence += (in_group - auc_group) / n_group[label]
        squares[label] += influence * influence
    # n / (n - 1) per class: with the group a single AUC, this is DeLong's variance exactly.
    variance = sum(squares[c] * n_whole[c] / (n_whole[c] - 1) for c in (0, 1) if n_whole[c] > 1)
    gap, half = auc_group - auc_whole, z * math.sqrt(variance)
    return gap, gap - half, gap + half


def within_group_auc(y: Sequence[int], p: Sequence[float], group: Sequence[str]) -> float | None:
    """Return the ROC-AUC over pairs from the same group only: each group's AUC weighted by its
    pairs (positives × negatives). A score that only tells groups apart gets 0.5.
    None when no group has both outcomes."""
    _check_lengths(y, p)
    members: dict[str, list[int]] = {}
    for i, g in enumerate(group):
        members.setdefault(g, []).append(i)
    total = weight = 0.0
    for chosen in members.values():
        gy = [y[i] for i in chosen]
        pairs = sum(gy) * (len(gy) - sum(gy))
        if pairs:
            total += pairs * roc_auc(gy, [p[i] for i in chosen])
            weight += pairs
    return total / weight if weight else None


def reliability(
    y: Sequence[int], p: Sequence[float], bins: int = 10
) -> list[tuple[int, float, float]]:
    """Return (n, mean predicted, observed rate) for each of `bins` equal-count bins of p, from
    the lowest predictions up (deciles by default)."""
    _check_lengths(y, p)
    order = sorted(range(len(p)), key=lambda i: p[i])
    out = []
    for b in range(bins):
        chosen = order[b * len(order) // bins:(b + 1) * len(order) // bins]
        if chosen:
            out.append((len(chosen), sum(p[i] for i in chosen) / len(chosen),
                        sum(y[i] for i in chosen) / len(chosen)))
    return out


def calibration_gap(
    y: Sequence[int], p: Sequence[float], member: Sequence[bool], z: float = 1.96
) -> tuple[float, float, float]:
    """Return (gap, low, high): the members' mean prediction minus their observed rate, with a
    normal interval (the limit of a bootstrap of the members; the tests check it against one).
    Negative means the group's risk is under-predicted."""
    _check_lengths(y, p)
    d = [pi - yi for yi, pi, m in zip(y, p, member) if m]
    if not d:
        raise ValueError("the group is empty")
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (len(d) - 1)) if len(d) > 1 else 0.0
    half = z * sd / math.sqrt(len(d))
    return mean, mean - half, mean + half


def _placements(y: Sequence[int], p: Sequence[float]) -> list[float]:
    """Each outcome's share of the other class it is ranked correctly against, ties half."""
    _class_counts(y)
    positives = sorted(pi for yi, pi in zip(y, p) if yi)
    negatives = sorted(pi for yi, pi in zip(y, p) if not yi)
    out = []
    for yi, pi in zip(y, p):
        # A positive should score above the negatives, a negative below the positives.
        others = negatives if yi else positives
        below, above = bisect_left(others, pi), bisect_right(others, pi)
        correct = below if yi else len(others) - above
        out.append((correct + (above - below) / 2) / len(others))
    return out


def _mean_of_positives(y: Sequence[int], placements: Sequence[float | None]) -> float:
    # The positives' mean placement is the AUC (the negatives' mean is the same number).
    chosen = [v for v, label in zip(placements, y) if label and v is not None]
    return sum(chosen) / len(chosen)


def _class_counts(y: Sequence[int]) -> tuple[int, int]:
    n_pos = sum(1 for label in y if label)
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("need at least one positive and one negative outcome")
    return n_pos, n_neg


def _check_lengths(y: Sequence[int], p: Sequence[float]) -> None:
    if len(y) != len(p) or not y:
        raise ValueError("y and p must be non-empty and of equal length")
