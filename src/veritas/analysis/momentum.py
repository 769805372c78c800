"""Learning Momentum Index (LMI): is a student's recent performance above or below their own norm.

It takes the student's time-ordered assessment scores as percentages (0-100), oldest first,
not two drafts of one answer, because momentum is a property of a score history.

Formula, with scores x_1..x_n (n >= MIN_SCORES):

    level_gap = EWMA(x; alpha=EWMA_ALPHA) - mean(x)          points
    slope     = Theil-Sen slope of the last SLOPE_WINDOW scores  points per assessment
    lmi       = tanh((level_gap + slope) / SCALE_POINTS)        in (-1, 1)

level_gap says whether recent scores sit above the student's own average; slope is the
expected change at the next assessment, estimated robustly (median of pairwise slopes) so a
single outlier cannot flip it. Their sum is a momentum in score points; tanh squashes it so
that SCALE_POINTS of momentum gives about 0.76. The constants were checked on OULAD 2013
(docs/momentum-and-risk.md): LMI adds to the cumulative mean in predicting the next mark.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from statistics import fmean, median

MIN_SCORES = 3  # with two points a "trend" is one difference, too noisy to label
EWMA_ALPHA = 0.3  # each score counts (1 - 0.3) times as much as the one after it
SLOPE_WINDOW = 5
SCALE_POINTS = 20.0  # OULAD marks swing by ~20 points between assessments
IMPROVING_AT = 0.25  # lmi >= this is 'improving' (about 5 points of momentum)
DECLINING_AT = -0.25  # lmi <= this is 'declining'


@dataclass(frozen=True)
class Momentum:
    """An LMI value, its trend label and the two components it was built from."""

    lmi: float | None
    trend: str  # 'improving' | 'steady' | 'declining' | 'insufficient_history'
    level_gap: float | None = None
    slope: float | None = None


def calculate_lmi(scores: Sequence[float]) -> Momentum:
    """Return the Learning Momentum Index of time-ordered percentage scores (oldest first)."""
    xs = [float(s) for s in scores]
    if len(xs) < MIN_SCORES:
        return Momentum(lmi=None, trend="insufficient_history")
    level_gap = ewma(xs, EWMA_ALPHA) - fmean(xs)
    slope = theil_sen_slope(xs[-SLOPE_WINDOW:])
    lmi = math.tanh((level_gap + slope) / SCALE_POINTS)
    return Momentum(lmi=lmi, trend=trend_label(lmi), level_gap=level_gap, slope=slope)


def trend_label(lmi: float) -> str:
    """Return the trend label of an LMI value."""
    if lmi >= IMPROVING_AT:
        return "improving"
    if lmi <= DECLINING_AT:
        return "declining"
    return "steady"


def ewma(xs: Sequence[float], alpha: float) -> float:
    """Return the mean of xs weighted (1 - alpha) ** age, where the newest score has age 0."""
    weights = [(1 - alpha) ** age for age in range(len(xs) - 1, -1, -1)]
    return sum(w * x for w, x in zip(weights, xs)) / sum(weights)


def theil_sen_slope(xs: Sequence[float]) -> float:
    """Return the median of pairwise slopes of xs against their positions 0, 1, 2, ..."""
    return median((xs[j] - xs[i]) / (j - i) for i, j in combinations(range(len(xs)), 2))
