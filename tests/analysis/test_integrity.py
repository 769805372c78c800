import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from veritas.analysis.integrity import (
    POLICIES,
    REFERENCE,
    analyze_thinking_quality,
    attempt_signals,
    exam_baseline,
    peer_similarities,
    peer_similarity,
    policy_for,
    robust_z,
    score_against,
    score_attempt,
)

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DURATION = 1800
SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vo", "shi", "pel", "dra", "nu", "qua", "zet"]
VOCAB = [a + b for a in SYLLABLES for b in SYLLABLES]


def essay(seed: int, words: int = 110) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCAB) for _ in range(words)) + "."


def ev(event_type: str, at: float, **data) -> dict:
    client = T0 + timedelta(seconds=at)
    # The server sees each event a little later, as batches arrive.
    return {"event_type": event_type, "data": data, "client_timestamp": client.isoformat(),
            "server_timestamp": client + timedelta(seconds=0.4)}


def attempt(seed: int, *, paste: bool = False, away: tuple = (), blips: int = 0,
            drop_heartbeats: tuple | None = None, camera_off: float = 0.0):
    """Events, final responses and drafts of a constructed 30-minute one-essay attempt."""
    text = essay(seed)
    events = [ev("heartbeat", t) for t in range(0, DURATION + 1, 10)
              if not (drop_heartbeats and drop_heartbeats[0] < t < drop_heartbeats[1])]
    drafts, typed_so_far = [], 0
    for k in range(1, 11):
        at = 150 * k
        if paste and k == 4:
            # Most of the answer arrives at once from the clipboard.
            upto = len(text) - 40
            events.append(ev("paste", at - 5, chars=upto - typed_so_far, question_id="q1"))
        else:
            upto = min(len(text), len(text) * k // 10) if not paste or k < 4 else len(text)
            if upto > typed_so_far:
                events.append(ev("typing", at, question_id="q1", keys=upto - typed_so_far + 9,
                                 chars_added=upto - typed_so_far, mean_interval_ms=210,
                                 pauses_over_2s=3))
        typed_so_far = max(typed_so_far, upto)
        drafts.append({"saved_at": (T0 + timedelta(seconds=at)).isoformat(),
                       "responses": {"q1": text[:upto], "q2": "B"}})
    for start, seconds in away:
        # A tab switch reports both a blur and a hidden tab for the same absence.
        events.append(ev("focus_lost", start + seconds, duration_ms=seconds * 1000))
        events.append(ev("visibility_hidden", start + seconds, duration_ms=seconds * 1000 - 300))
    for i in range(blips):
        events.append(ev("focus_lost", 31 + 41 * i, duration_ms=1000))
    if camera_off:
        events.append(ev("eye_movement", 5, x=0.5, y=0.5, confidence=0.9, gaze_point=[1, 1]))
        events.append(ev("face_missing", 400 + camera_off, duration_ms=camera_off * 1000))
    events.sort(key=lambda e: e["client_timestamp"])
    return events, {"q1": text, "q2": "B"}, drafts


def signals(seed: int, **kw) -> dict:
    events, final, drafts = attempt(seed, **kw)
    return attempt_signals(events, final, drafts, DURATION, started_at=T0, free_text_ids={"q1"})


def honest_population(n: int = 10) -> list[dict]:
    return [signals(100 + i, blips=i % 3) for i in range(n)]


def test_honest_attempt_has_no_flags_and_low_priority():
    s = signals(1, blips=1)
    assert s["focus_away_seconds"] == 0 and s["focus_episodes"] == 0
    assert s["paste_ratio"] == 0 and s["paste_jumps"] == 0
    assert s["typing_shortfall"] == pytest.approx(0, abs=0.01)
    assert s["camera_off_share"] is None  # no camera module: not measured, not a concern
    assert s["coverage"] == pytest.approx(1.0) and s["gaps"] == []
    for population in ([], honest_population()):
        r = score_attempt(s, population, POLICIES["standard"])
        assert r.score > 0.9 and r.band == "low" and r.flags == []
        assert r.confidence == pytest.approx(1.0)


def test_paste_heavy_attempt_scores_lower_and_paste_drives_it():
    honest = score_attempt(signals(1), honest_population())
    s = signals(2, paste=True)
    assert s["paste_ratio"] > 0.6 and s["paste_jumps"] == 1
    # The pasted text is not also counted as a typing shortfall.
    assert s["typing_shortfall"] == pytest.approx(0, abs=0.01)
    for population in ([], honest_population()):
        r = score_attempt(s, population)
        assert r.score < honest.score and r.band in ("medium", "high")
        top = max(r.contributions, key=lambda n: r.contributions[n]["contribution"])
        assert top == "paste_ratio" and r.flags[0] == "paste_ratio"
    assert score_attempt(s, []).contributions["paste_ratio"]["basis"] == "reference"
    assert score_attempt(s, honest_population()).contributions["paste_ratio"]["basis"] == "exam"


def test_long_focus_loss_is_flagged_but_many_short_blips_are_ignored():
    long_away = signals(3, away=((300, 150), (1000, 120)))
    assert long_away["focus_away_seconds"] == pytest.approx(270)  # blur+hidden merged, not 540
    assert long_away["focus_episodes"] == 2
    r = score_attempt(long_away, honest_population())
    assert r.band != "low" and "focus_away_seconds" in r.flags

    blips = signals(4, blips=40)
    assert blips["focus_away_seconds"] == 0 and blips["focus_episodes"] == 0
    assert score_attempt(blips, honest_population()).band == "low"


def test_flaky_connection_is_a_gap_with_lower_confidence_not_a_lower_score():
    steady, flaky = signals(5), signals(5, drop_heartbeats=(600, 900))
    assert flaky["gaps"] and all(600 <= a < b <= 901 for a, b in flaky["gaps"])
    assert sum(b - a for a, b in flaky["gaps"]) == pytest.approx(300, abs=1)
    assert flaky["coverage"] == pytest.approx(1 - 300 / DURATION, abs=0.001)
    for population in ([], honest_population()):
        a, b = score_attempt(steady, population), score_attempt(flaky, population)
        assert b.score == a.score and b.band == a.band
        assert b.confidence < a.confidence
        assert b.gaps == flaky["gaps"]


def test_hidden_tab_without_heartbeats_is_covered_by_its_report():
    events, final, drafts = attempt(6, away=((300, 200),))
    events = [e for e in events if not (e["event_type"] == "heartbeat"
              and T0 + timedelta(seconds=305) < datetime.fromisoformat(e["client_timestamp"])
              < T0 + timedelta(seconds=495))]
    s = attempt_signals(events, final, drafts, DURATION, started_at=T0, free_text_ids={"q1"})
    assert s["gaps"] == [] and s["focus_away_seconds"] == pytest.approx(200)


def test_within_exam_normalization_open_book_paste_is_not_flagged():
    s = signals(2, paste=True)
    everyone_pastes = [signals(200 + i, paste=True) for i in range(8)]
    r = score_attempt(s, everyone_pastes)
    assert r.band == "low" and r.flags == [] and r.score > 0.9
    assert score_attempt(s, honest_population()).band != "low"


def test_contributions_sum_to_one_minus_score():
    cases = [signals(1), signals(2, paste=True), signals(3, away=((300, 150),)),
             signals(7, paste=True, away=((100, 400),), camera_off=300)]
    for s in cases:
        for population in ([], honest_population()):
            r = score_attempt(s, population)
            assert 0 <= r.score <= 1
            total = sum(p["contribution"] for p in r.contributions.values())
            assert abs(total - (1 - r.score)) < 1e-9
            assert set(r.contributions) == set(REFERENCE)
            assert all({"value", "z", "weight", "contribution"} <= set(p)
                       for p in r.contributions.values())
            assert r.as_dict()["policy_version"] == "standard-1"


def test_camera_share_counts_only_when_a_camera_module_reports():
    s = signals(8, camera_off=360)
    assert s["camera_off_share"] == pytest.approx(360 / DURATION)
    r = score_attempt(s, [])
    assert "camera_off_share" in r.flags


def test_thinking_quality_gradual_growth_vs_pasted_block():
    text = essay(9, 150)
    gradual = [text[: len(text) * k // 12] for k in range(13)]
    qualities = [analyze_thinking_quality(a, b) for a, b in zip(gradual, gradual[1:])]
    assert min(qualities) > 0.7
    assert analyze_thinking_quality("", text) < 0.1  # the whole answer in one drop
    assert analyze_thinking_quality(text[:120], text) < 0.5
    assert analyze_thinking_quality(text, text) == 1.0
    assert analyze_thinking_quality(text, "") == 1.0
    # Scattered small edits all over the text are organic.
    words = text.split()
    edited = " ".join(w + "s" if i % 9 == 0 else w for i, w in enumerate(words))
    assert analyze_thinking_quality(text, edited) > 0.9


def test_peer_similarity_copied_vs_independent():
    original = essay(10)
    copied = original.replace("ka", "ka", 1)[:-1] + " and some extra words at the end"
    independent = [essay(11), essay(12), essay(13)]
    assert peer_similarity(copied, independent + [original]) > 0.9
    assert peer_similarity(essay(14), independent + [original]) < 0.1
    assert peer_similarity("too short", [original]) == 0.0
    assert peer_similarity(original, []) == 0.0
    # Case and punctuation do not hide a copy.
    assert peer_similarity(original.upper().replace(" ", ", "), [original]) == 1.0


def test_peer_similarity_signal_from_other_attempts():
    events, final, drafts = attempt(15)
    peers = [{"q1": essay(16)}, {"q1": final["q1"]}, {"q2": "B"}]
    s = attempt_signals(events, final, drafts, DURATION, started_at=T0,
                        free_text_ids={"q1"}, peer_responses=peers)
    assert s["peer_similarity"] == 1.0
    alone = attempt_signals(events, final, drafts, DURATION, started_at=T0, free_text_ids={"q1"},
                            peer_responses=[{"q1": essay(17)}])
    assert alone["peer_similarity"] < 0.1
    assert score_attempt(s, []).flags == ["peer_similarity"]


def test_peer_similarities_of_a_whole_exam_equal_one_attempt_at_a_time():
    # Answers from a small vocabulary share n-grams; copies, short answers, a blank, a
    # non-text answer, a choice question and an attempt outside the pool all occur.
    rng = random.Random(5)
    small = VOCAB[:12]

    def answer() -> object:
        kind = rng.random()
        if kind < 0.1:
            return rng.choice(["", None, ["A"], "too short to count"])
        return " ".join(rng.choice(small) for _ in range(rng.randint(8, 40)))

    for _ in range(20):
        responses = {k: {"q1": answer(), "q2": answer(), "mc": "B"} for k in range(12)}
        for k in rng.sample(range(12), 3):  # copies, whole or with a tail
            responses[k]["q1"] = str(responses[rng.randrange(12)]["q1"]) + " extra words"
        pool = {k: r for k, r in responses.items() if k != 11}  # 11 never completed
        free = {"q1", "q2"}
        finals = {k: {q: t for q, t in r.items() if isinstance(t, str) and q in free}
                  for k, r in responses.items()}
        batch = peer_similarities(finals, pool)
        for k, r in responses.items():
            others = [p for j, p in pool.items() if j != k]
            alone = attempt_signals([], r, [], 60, started_at=T0, free_text_ids=free,
                                    peer_responses=others)["peer_similarity"]
            assert batch[k] == alone, (k, r)


def test_scoring_against_a_baseline_is_score_attempt():
    rng = random.Random(9)
    for size in (0, 3, 4, 5, 9, 40):
        population = [signals(60 + i, away=((100, rng.randint(0, 90)),),
                              paste=rng.random() < 0.3) for i in range(size)]
        baseline = exam_baseline(population)
        for s in population[:5] + [signals(99, paste=True), signals(98, camera_off=300)]:
            for policy in POLICIES.values():
                assert (score_against(s, baseline, policy).as_dict()
                        == score_attempt(s, population, policy).as_dict())


def test_robust_z_uses_median_and_mad_with_a_floor():
    assert robust_z(3, [1, 2, 3, 4, 100]) == 0
    assert robust_z(5, [1, 2, 3, 4, 100]) == pytest.approx(2 / 1.4826)
    z = robust_z(0.5, [0.0] * 6, floor=0.1)
    assert z == pytest.approx(5.0)
    assert math.isfinite(robust_z(1.0, [0.0] * 6))


def test_policy_presets_order_strict_flags_more_than_relaxed():
    population = honest_population()
    attempts = [signals(20 + i, away=((200, 20 + 25 * i),), paste=(i % 3 == 0))
                for i in range(9)] + [signals(40, camera_off=200)]
    counts = {}
    for name in ("strict", "standard", "relaxed"):
        results = [score_attempt(s, population, POLICIES[name]) for s in attempts]
        counts[name] = (sum(r.band != "low" for r in results),
                        sum(len(r.flags) for r in results),
                        sum(r.band == "high" for r in results))
    for i in range(3):
        assert counts["strict"][i] >= counts["standard"][i] >= counts["relaxed"][i]
    assert counts["strict"][0] > counts["relaxed"][0]
    assert counts["strict"][1] > counts["relaxed"][1]


def test_policy_for_reads_exam_metadata():
    assert policy_for(None) is POLICIES["standard"]
    assert policy_for({}) is POLICIES["standard"]
    assert policy_for({"integrity_policy": "strict"}) is POLICIES["strict"]
    custom = policy_for({"integrity_policy": {"weights": {"camera_off_share": 0}}})
    assert custom.weights["camera_off_share"] == 0 and custom.weights["paste_ratio"] == 1.0
    assert custom.version.startswith("standard-1+")
    other = policy_for({"integrity_policy": {"weights": {"camera_off_share": 0.1}}})
    assert other.version != custom.version  # a policy change is visible to rescoring
    relaxed = policy_for({"integrity_policy": {"preset": "relaxed", "high_below": 0.1}})
    assert relaxed.high_below == 0.1 and relaxed.medium_below == POLICIES["relaxed"].medium_below
    s = signals(8, camera_off=360)
    assert "camera_off_share" not in score_attempt(s, [], custom).flags
    for bad in ("lenient", {"preset": "nope"}, {"weights": {"typing_speed": 1}},
                {"weights": {"paste_ratio": -1}}, {"high_below": 0.9, "medium_below": 0.5}, 7):
        with pytest.raises(ValueError):
            policy_for({"integrity_policy": bad})
