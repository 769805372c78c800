"""Integrity score of an exam attempt: a review priority for a teacher, never a verdict.

Pipeline: monitoring events + drafts -> attempt_signals() -> raw signals; score_attempt()
turns one attempt's signals into robust z-scores against the signals of the exam's
population (its completed attempts), weights the positive ones per the exam's Policy and
combines them into a score in [0, 1] (1 = no concern) whose loss is split exactly into
per-signal contributions. Telemetry gaps lower the confidence only. The method is written up in docs/integrity.md.

For a whole exam at once (the final scores), exam_baseline() summarizes the population once
and score_against() scores each attempt against it; peer_similarities() computes every
attempt's peer_similarity in one pass. Both give exactly what the one-attempt functions give.
"""

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from difflib import SequenceMatcher
from itertools import chain
from statistics import median
from typing import Any, TypeGuard, TypeVar

from veritas.monitoring.limits import HEARTBEAT_SECONDS

GAP_FACTOR = 6.0  # silence longer than 6 heartbeats (30 s) is a telemetry gap, not a late packet
BLIP_SECONDS = 2.0  # shorter absences are notifications and screen flicker
FOCUS_EVENTS = ("focus_lost", "visibility_hidden")
CAMERA_OFF_EVENTS = ("gaze_off", "face_missing")
CAMERA_EVENTS = ("eye_movement", "gaze_off", "face_missing", "multiple_faces")
BURST_CHARS = 300.0  # about a minute of fast typing: one autosave rarely adds more by hand
JUMP_QUALITY = 0.5  # analyze_thinking_quality below this is a jump
MIN_JUMP_CHARS = 80  # smaller insertions are not worth a teacher's look
MIN_SIMILARITY_WORDS = 12  # short answers ("mitochondria") match by necessity
MIN_PEERS = 5  # fewer than this and an exam median/MAD is noise: use REFERENCE instead
MAD_TO_SIGMA = 1.4826  # makes the MAD estimate a standard deviation for normal data
Z_CAP = 8.0  # one absurd value must not drown the explanation of the others

# signal -> (typical honest value, one unit of concern); used when too few of the exam's
# attempts measured the signal, and the unit also floors the exam spread (see score_attempt).
REFERENCE: dict[str, tuple[float, float]] = {
    "focus_away_seconds": (30.0, 60.0),
    "focus_episodes": (2.0, 3.0),
    "paste_ratio": (0.05, 0.15),
    "typing_shortfall": (0.10, 0.20),
    "camera_off_share": (0.05, 0.05),
    "paste_jumps": (0.0, 1.0),
    "peer_similarity": (0.15, 0.20),
}
SCORED_SIGNALS = tuple(REFERENCE)
SPREAD_FLOOR_FRACTION = 0.5


@dataclass(frozen=True)
class Policy:
    """Weights and thresholds of one exam's integrity scoring, versioned for rescoring."""

    name: str
    version: str
    weights: Mapping[str, float]
    scale: float = 5.0  # score = exp(-weighted positive z / scale)
    medium_below: float = 0.6  # score below this: medium review priority
    high_below: float = 0.35  # score below this: high review priority
    flag_z: float = 2.0  # a signal at or above this z is listed in flags


_STANDARD_WEIGHTS = {
    "focus_away_seconds": 1.0, "focus_episodes": 0.5, "paste_ratio": 1.0,
    "typing_shortfall": 0.6, "camera_off_share": 0.6, "paste_jumps": 0.8, "peer_similarity": 1.0,
}
POLICIES: dict[str, Policy] = {
    "strict": Policy("strict", "strict-1", _STANDARD_WEIGHTS, medium_below=0.7,
                     high_below=0.45, flag_z=1.5),
    "standard": Policy("standard", "standard-1", _STANDARD_WEIGHTS),
    # Camera modules misfire on glasses and poor light; relaxed exams discount them.
    "relaxed": Policy("relaxed", "relaxed-1",
                      _STANDARD_WEIGHTS | {"camera_off_share": 0.3, "focus_episodes": 0.25},
                      medium_below=0.45, high_below=0.2, flag_z=3.0),
}


def policy_for(exam_metadata: Mapping[str, Any] | None) -> Policy:
    """Return the policy named or described by metadata["integrity_policy"] (default standard).

    A dict overrides the standard preset (or the one in its "preset" key); its version is the
    base version plus a digest of the override, so any change is visible to rescoring. Raises
    ValueError on an unknown preset or a bad value; ExamSettings (exams/settings.py) calls it
    when an exam is saved, so a bad policy is a 422 there, not a failed analysis later.
    """
    spec = (exam_metadata or {}).get("integrity_policy")
    if spec is None:
        return POLICIES["standard"]
    if isinstance(spec, str):
        if spec not in POLICIES:
            raise ValueError(f"unknown integrity policy {spec!r}")
        return POLICIES[spec]
    if not isinstance(spec, Mapping):
        raise ValueError("integrity_policy must be a preset name or an object")
    base = POLICIES.get(spec.get("preset", "standard"))
    if base is None:
        raise ValueError(f"unknown integrity policy {spec.get('preset')!r}")
    weights = dict(base.weights)
    if not isinstance(spec.get("weights") or {}, Mapping):
        raise ValueError("integrity_policy.weights must be an object")
    for name, w in (spec.get("weights") or {}).items():
        if name not in REFERENCE or not _is_number(w) or w < 0:
            raise ValueError(f"bad weight for {name!r}")
        weights[name] = float(w)
    changes: dict[str, Any] = {"name": "custom", "weights": weights}
    for key in ("scale", "medium_below", "high_below", "flag_z"):
        if key in spec:
            if not _is_number(spec[key]) or spec[key] <= 0:
                raise ValueError(f"bad {key}")
            changes[key] = float(spec[key])
    policy = replace(base, **changes)
    if not 0 < policy.high_below <= policy.medium_below <= 1:
        raise ValueError("need 0 < high_below <= medium_below <= 1")
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    return replace(policy, version=str(spec.get("version") or f"{base.version}+{digest[:8]}"))


# ---- raw signals ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\S+\s*|\s+")  # words with their trailing space: joined, they are the text
_WORD = re.compile(r"\w+")


def _largest_insertion(draft1: str, draft2: str) -> int:
    """Characters in the largest contiguous block of draft2 that is new relative to draft1."""
    a, b = _TOKEN.findall(draft1), _TOKEN.findall(draft2)
    # Word tokens, not characters: faster, and a rewritten word is one edit, not five.
    ops = SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return max((sum(map(len, b[j1:j2])) for tag, _, _, j1, j2 in ops
                if tag in ("insert", "replace")), default=0)


def analyze_thinking_quality(draft1: str, draft2: str) -> float:
    """Return 0..1, how organically draft2 grew from draft1 (1 = gradual, 0 = one big drop).

    With L the largest contiguous insertion (characters) and n = len(draft2):
        quality = 1 - (L / n) * min(1, L / BURST_CHARS)
    L / n is how much of the new draft arrived as one block; the size factor keeps small
    additions organic however short the draft (typing 60 characters into an empty box is
    normal), while a block of BURST_CHARS or more that makes up the draft scores near 0.
    """
    if not draft2:
        return 1.0
    largest = _largest_insertion(draft1 or "", draft2)
    return 1.0 - (largest / len(draft2)) * min(1.0, largest / BURST_CHARS)


def peer_similarity(answer: str, peers: Sequence[str], n: int = 3) -> float:
    """Return the share of the answer's distinct word n-grams found in its most similar peer."""
    mine = _ngrams(answer, n)
    if not mine:
        return 0.0
    return max((len(mine & _ngrams(p, n)) / len(mine) for p in peers), default=0.0)


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _seconds(value: Any) -> float | None:
    """Epoch seconds of a datetime, ISO string or number (naive datetimes are UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _event_times(events: Sequence[Mapping[str, Any]]) -> list[float | None]:
    """Each event's time on the server clock, from its client time where there is one.

    Client times keep the true order and spacing of batched or buffered events; the median
    server-client offset moves them onto the server clock that started_at uses.
    """
    pairs = [(_seconds(e.get("client_timestamp")), _seconds(e.get("server_timestamp")))
             for e in events]
    offsets = [s - c for c, s in pairs if c is not None and s is not None]
    shift = median(offsets) if offsets else 0.0
    return [c + shift if c is not None else s for c, s in pairs]


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    return event.get("data") or event.get("data_payload") or {}


def _duration(event: Mapping[str, Any]) -> float:
    d = _data(event).get("duration_ms")
    return max(0.0, float(d)) / 1000 if _is_number(d) else 0.0


def _merge(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _absences(events: Sequence[Mapping[str, Any]], times: Sequence[float | None],
              types: Collection[str]) -> list[tuple[float, float]]:
    """Merged [start, end] of the reported absences of these types, blips dropped."""
    # A tab switch fires both focus_lost and visibility_hidden: merge before summing.
    spans = _merge((t - _duration(e), t) for e, t in zip(events, times)
                   if e.get("event_type") in types and t is not None and _duration(e) > 0)
    return [(s, e) for s, e in spans if e - s >= BLIP_SECONDS]


def _texts(responses: Mapping[str, Any], free_text_ids: Collection[str] | None) -> dict[str, str]:
    return {q: a for q, a in (responses or {}).items()
            if isinstance(a, str) and (free_text_ids is None or q in free_text_ids)}


def attempt_signals(
    events: Sequence[Mapping[str, Any]],
    final_responses: Mapping[str, Any],
    drafts: Sequence[Mapping[str, Any]],
    duration_seconds: float | None,
    *,
    started_at: Any = None,
    free_text_ids: Collection[str] | None = None,
    peer_responses: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Return the raw integrity signals of one attempt, plus its telemetry coverage and gaps.

    events: time-ordered dicts with event_type, data (or data_payload) and client_timestamp
    and/or server_timestamp. drafts: the attempt's autosaves, {"saved_at", "responses"} or
    bare responses. free_text_ids: the essay/short-text questions (default: every string
    answer). peer_responses: other attempts' final responses, for peer_similarity.
    A signal is None when nothing could measure it; None is never treated as a concern.
    gaps are (start, end) seconds from the attempt start.
    """
    times = _event_times(events)
    known = [t for t in times if t is not None]
    started = _seconds(started_at)
    start = started if started is not None else (min(known) if known else 0.0)
    end = start + duration_seconds if duration_seconds else max(known, default=start)
    total = max(end - start, 1e-9)

    away = _absences(events, times, FOCUS_EVENTS)
    camera_seen = any(e.get("event_type") in CAMERA_EVENTS for e in events)
    camera_off = sum(e - s for s, e in _absences(events, times, CAMERA_OFF_EVENTS))

    final = _texts(final_responses, free_text_ids)
    final_chars = sum(map(len, final.values()))

    def chars(kind: str, key: str) -> float:
        # With known question types, clipboard and typing in choice questions are irrelevant.
        return sum(float(_data(e)[key]) for e in events
                   if e.get("event_type") == kind and _is_number(_data(e).get(key))
                   and (free_text_ids is None or _data(e).get("question_id") in (None, *final)))

    pasted, typed = chars("paste", "chars"), chars("typing", "chars_added")
    typing_seen = any(e.get("event_type") == "typing" for e in events)
    # Pasted text is paste_ratio's: counting it here too would score one paste twice.
    unexplained = max(0.0, final_chars - typed - pasted)

    return {
        "focus_away_seconds": sum(e - s for s, e in away),
        "focus_episodes": float(len(away)),
        "paste_ratio": min(1.0, pasted / final_chars) if final_chars else None,
        "typing_shortfall": unexplained / final_chars if final_chars and typing_seen else None,
        "camera_off_share": min(1.0, camera_off / total) if camera_seen else None,
        "paste_jumps": float(_paste_jumps(events, times, drafts, final, free_text_ids, end)),
        "peer_similarity": _peer_signal(final, peer_responses, free_text_ids),
        **_coverage(events, times, start, end),
    }


def _paste_jumps(events: Sequence[Mapping[str, Any]], times: Sequence[float | None],
                 drafts: Sequence[Mapping[str, Any]], final: Mapping[str, str],
                 free_text_ids: Collection[str] | None, end: float) -> int:
    """Draft-to-draft jumps (low thinking quality, large) with a big enough paste in between."""
    states: list[tuple[float | None, Mapping[str, str]]] = [(None, {})]  # attempts start empty
    for d in drafts:
        responses = d.get("responses", d) if isinstance(d.get("responses"), Mapping) else d
        states.append((_seconds(d.get("saved_at")), _texts(responses, free_text_ids)))
    states.append((end, final))
    pastes = [(t, _data(e)) for e, t in zip(events, times) if e.get("event_type") == "paste"]
    jumps = 0
    for (t0, before), (t1, after) in zip(states, states[1:]):
        for qid, text in after.items():
            old = before.get(qid, "")
            largest = _largest_insertion(old, text)
            if largest < MIN_JUMP_CHARS or analyze_thinking_quality(old, text) >= JUMP_QUALITY:
                continue
            # Unknown draft times cannot rule a paste out: then any paste in the attempt counts.
            if any(float(p.get("chars") or 0) >= 0.5 * largest
                   and p.get("question_id") in (None, qid)
                   and (t is None or ((t0 is None or t > t0) and (t1 is None or t <= t1)))
                   for t, p in pastes if _is_number(p.get("chars"))):
                jumps += 1
    return jumps


K = TypeVar("K", bound=Hashable)


def peer_similarities(
    finals: Mapping[K, Mapping[str, str]], pool: Mapping[K, Mapping[str, Any]]
) -> dict[K, float | None]:
    """peer_similarity of every attempt in `finals` against the answers in `pool` but its own.

    finals: each attempt's free-text answers (question id -> text); pool: the peers' final
    responses, keyed like finals (an attempt in both is never its own peer). The result is
    exactly what attempt_signals computes for each attempt with the rest of the pool as
    peer_responses, from one index of the pool's word n-grams instead of one comparison per
    pair of attempts.
    """
    grams: dict[str, dict[tuple[str, ...], list[K]]] = defaultdict(lambda: defaultdict(list))
    answered: dict[str, set[K]] = defaultdict(set)
    for key, responses in pool.items():
        for qid, text in (responses or {}).items():
            if isinstance(text, str) and text:
                answered[qid].add(key)
                for gram in _ngrams(text, 3):
                    grams[qid][gram].append(key)
    result: dict[K, float | None] = {}
    for key, final in finals.items():
        best = None
        for qid, text in final.items():
            if len(_WORD.findall(text)) < MIN_SIMILARITY_WORDS:
                continue
            if not answered[qid] - {key}:
                continue  # no peer answered this question
            mine = _ngrams(text, 3)
            shared = Counter(chain.from_iterable(grams[qid].get(g, ()) for g in mine))
            shared.pop(key, None)
            similarity = max(shared.values(), default=0) / len(mine) if mine else 0.0
            best = max(best or 0.0, similarity)
        result[key] = best
    return result


def _peer_signal(final: Mapping[str, str], peer_responses: Sequence[Mapping[str, Any]],
                 free_text_ids: Collection[str] | None) -> float | None:
    """Highest containment of any long free-text answer in another attempt's answer."""
    best = None
    for qid, text in final.items():
        if len(_WORD.findall(text)) < MIN_SIMILARITY_WORDS:
            continue
        peers = [t for r in peer_responses if (t := _texts(r, free_text_ids).get(qid))]
        if peers:
            best = max(best or 0.0, peer_similarity(text, peers))
    return best


def _coverage(events: Sequence[Mapping[str, Any]], times: Sequence[float | None],
              start: float, end: float) -> dict[str, Any]:
    """Telemetry gaps (silences > GAP_FACTOR heartbeats) and the share of the attempt covered.

    Any event shows the client alive; a reported focus/visibility absence covers its span, as
    the client told us what happened (throttled background tabs send no heartbeats).
    """
    spans = sorted((t - _duration(e) if e.get("event_type") in FOCUS_EVENTS else t, t)
                   for e, t in zip(events, times) if t is not None)
    gaps, cursor, limit = [], start, GAP_FACTOR * HEARTBEAT_SECONDS
    for s, e in spans + [(end, end)]:
        s = min(max(s, start), end)
        if s - cursor > limit:
            gaps.append((cursor - start, s - start))
        cursor = max(cursor, min(e, end))
    missing = sum(e - s for s, e in gaps)
    total = end - start
    return {"coverage": max(0.0, 1 - missing / total) if total > 0 else 0.0, "gaps": gaps}


# ---- scoring ---------------------------------------------------------------------------------

def robust_z(value: float, population: Sequence[float], floor: float = 1e-6) -> float:
    """Return (value - median) / max(1.4826 * MAD, floor) of the population."""
    mid = median(population)
    spread = MAD_TO_SIGMA * median(abs(x - mid) for x in population)
    return (value - mid) / max(spread, floor)


@dataclass(frozen=True)
class IntegrityResult:
    """An attempt's integrity score (1 = no concern), review band and its explanation."""

    score: float
    band: str  # review priority: 'low' | 'medium' | 'high'
    confidence: float  # share of the attempt covered by telemetry
    contributions: dict[str, dict[str, Any]]  # signal -> value, z, weight, contribution, basis
    flags: list[str]  # signals with z >= policy.flag_z, largest contribution first
    policy_version: str
    gaps: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for behavior_analysis.details."""
        return {"score": self.score, "band": self.band, "confidence": self.confidence,
                "contributions": self.contributions, "flags": self.flags,
                "policy_version": self.policy_version, "gaps": [list(g) for g in self.gaps]}


Baseline = dict[str, tuple[float, float] | None]


def exam_baseline(exam_population_signals: Sequence[Mapping[str, Any]]) -> Baseline:
    """Each scored signal's exam median and robust spread (1.4826 * MAD) over the population,
    or None where fewer than MIN_PEERS attempts measured it (the reference scales apply)."""
    baseline: Baseline = {}
    for name in SCORED_SIGNALS:
        values = [float(p[name]) for p in exam_population_signals if p.get(name) is not None]
        if len(values) < MIN_PEERS:
            baseline[name] = None
            continue
        mid = median(values)
        baseline[name] = (mid, MAD_TO_SIGMA * median(abs(x - mid) for x in values))
    return baseline


def score_attempt(
    signals: Mapping[str, Any],
    exam_population_signals: Sequence[Mapping[str, Any]],
    policy: Policy | None = None,
) -> IntegrityResult:
    """Score one attempt's signals against the signals of the exam's population.

    z_i: robust z against the exam (>= MIN_PEERS measured attempts; the spread is floored at
    half the signal's reference unit, so a unanimous exam does not turn a trifle into a huge
    z), else (value - reference centre) / reference unit. Only positive z counts, capped at
    Z_CAP:
        load  = sum_i weight_i * min(max(0, z_i), Z_CAP)
        score = exp(-load / policy.scale)
    and signal i's contribution is (1 - score) * weight_i * z_i+ / load, so the contributions
    add up to 1 - score. Coverage and gaps never enter the score.
    """
    return score_against(signals, exam_baseline(exam_population_signals), policy)


def score_against(
    signals: Mapping[str, Any], baseline: Baseline, policy: Policy | None = None
) -> IntegrityResult:
    """score_attempt against a population already summarized by exam_baseline."""
    policy = policy or POLICIES["standard"]
    parts: dict[str, dict[str, Any]] = {}
    for name in SCORED_SIGNALS:
        value, weight = signals.get(name), float(policy.weights.get(name, 0.0))
        if value is None:
            parts[name] = {"value": None, "z": None, "weight": weight, "contribution": 0.0,
                           "basis": "unmeasured"}
            continue
        centre, unit = REFERENCE[name]
        exam = baseline.get(name)
        if exam is not None:
            # robust_z's arithmetic, on the median and spread computed once for the exam.
            mid, spread = exam
            z, basis = (float(value) - mid) / max(spread, SPREAD_FLOOR_FRACTION * unit), "exam"
        else:
            z, basis = (float(value) - centre) / unit, "reference"
        parts[name] = {"value": float(value), "z": z, "weight": weight, "basis": basis,
                       "load": weight * min(max(0.0, z), Z_CAP)}
    load = sum(p.get("load", 0.0) for p in parts.values())
    score = math.exp(-load / policy.scale)
    for p in parts.values():
        share = p.pop("load", 0.0)
        p["contribution"] = (1 - score) * share / load if load > 0 else 0.0
    band = ("high" if score < policy.high_below
            else "medium" if score < policy.medium_below else "low")
    flags = sorted((n for n, p in parts.items()
                    if p["z"] is not None and p["weight"] > 0 and p["z"] >= policy.flag_z),
                   key=lambda n: -parts[n]["contribution"])
    coverage = signals.get("coverage")
    return IntegrityResult(
        score=score, band=band, confidence=float(coverage) if coverage is not None else 0.0,
        contributions=parts, flags=flags, policy_version=policy.version,
        gaps=[tuple(g) for g in signals.get("gaps") or []])


def _is_number(x: object) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
