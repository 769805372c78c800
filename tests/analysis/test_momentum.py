import math
import random

import pytest

from veritas.analysis.momentum import (
    DECLINING_AT,
    IMPROVING_AT,
    calculate_lmi,
    ewma,
    theil_sen_slope,
    trend_label,
)


def test_rising_history_is_improving():
    m = calculate_lmi([50, 60, 70, 80, 90])
    assert m.trend == "improving"
    assert m.lmi is not None and m.lmi > IMPROVING_AT
    assert m.slope == 10


def test_falling_history_is_declining():
    m = calculate_lmi([90, 80, 70, 60, 50])
    assert m.trend == "declining"
    assert m.lmi is not None and m.lmi < DECLINING_AT


def test_flat_history_is_steady_with_zero_momentum():
    m = calculate_lmi([70, 70, 70, 70])
    assert m.trend == "steady"
    assert m.lmi == 0
    assert m.level_gap == 0 and m.slope == 0


def test_short_history_is_insufficient():
    for scores in ([], [80], [80, 90]):
        m = calculate_lmi(scores)
        assert m.lmi is None
        assert m.trend == "insufficient_history"


def test_hand_computed_value():
    # ewma weights 0.49, 0.7, 1 -> 158.4 / 2.19; mean 70; Theil-Sen slope 10.
    m = calculate_lmi([60, 70, 80])
    assert m.level_gap == pytest.approx(158.4 / 2.19 - 70)
    assert m.slope == pytest.approx(10)
    assert m.lmi == pytest.approx(math.tanh((158.4 / 2.19 - 70 + 10) / 20))


def test_slope_shrugs_off_one_outlier():
    assert theil_sen_slope([70, 72, 74, 10, 78]) == pytest.approx(2)


def test_slope_uses_only_the_last_five_scores():
    early_collapse = calculate_lmi([100, 0, 70, 70, 70, 70, 70])
    assert early_collapse.slope == 0


def test_lmi_is_bounded():
    rng = random.Random(5)
    histories = [[0, 100] * 5, [100] * 5 + [0] * 5, [0] * 9 + [100]]
    histories += [[rng.uniform(0, 100) for _ in range(rng.randint(3, 12))] for _ in range(200)]
    for scores in histories:
        lmi = calculate_lmi(scores).lmi
        assert lmi is not None and -1 <= lmi <= 1


def test_accepts_any_sequence_of_numbers():
    assert calculate_lmi((60, 70, 80)) == calculate_lmi([60.0, 70.0, 80.0])


def test_ewma_weights_recent_scores_more():
    assert ewma([0, 100], 0.3) > 50


def test_trend_label_thresholds():
    assert trend_label(IMPROVING_AT) == "improving"
    assert trend_label(DECLINING_AT) == "declining"
    assert trend_label(0.0) == "steady"
