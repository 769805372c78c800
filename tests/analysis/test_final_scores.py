"""Final integrity scores: the same behaviour gets the same final score whatever the order of
submission and the load, provisional scores say so in every teacher view, alerts follow the
final score (audited), and batches are safe to repeat and to run at once.

Every exam here has one essay question; a behaviour is an essay and how it got there (typed,
or partly or wholly pasted). Signals built from whole characters are exact, so final scores
are compared with ==, not approximately.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text
from tests.support import Api, ServerProcess, drop_database, make_database

from veritas.analysis import final_scores
from veritas.config import Settings
from veritas.db.engine import create_engine, create_sessionmaker
from veritas.db.unit_of_work import SYSTEM, Caller, unit_of_work

ESSAY_EXAM = {"questions": [{"id": "e1", "type": "essay", "prompt": "Explain.", "points": 5}],
              "max_score": 5, "passing_score": 3}
WORDS = ("membrane energy protein enzyme nucleus osmosis carbon light water oxygen glucose "
         "cell gradient pump signal chain transport active passive diffusion structure layer "
         "lipid charge molecule reaction surface volume pressure balance").split()


def essay(seed: int, words: int = 40) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


# label -> (the essay, the share of it pasted; the rest is typed)
BEHAVIOURS = {f"honest-{i}": (essay(i), 0.0) for i in range(6)} | {
    "light": (essay(20), 0.2),  # a fifth pasted: little against the reference, much here
    "paster-a": (essay(30), 1.0),
    "paster-b": (essay(30), 1.0),  # did exactly what paster-a did
    "copier": (essay(0), 1.0),  # pasted honest-0's essay
}


def behave(api: Api, student: dict, attempt_id: str, label: str) -> None:
    """Send the behaviour's monitoring events and submit its essay."""
    text, share = BEHAVIOURS[label]
    pasted = round(len(text) * share)
    typed = len(text) - pasted
    events = [{"event_type": "heartbeat"}]
    if typed:
        events.append({"event_type": "typing", "data": {
            "question_id": "e1", "keys": typed, "chars_added": typed, "mean_interval_ms": 180,
            "pauses_over_2s": 2}})
    if pasted:
        events.append({"event_type": "paste", "data": {"question_id": "e1", "chars": pasted}})
    sent = api.post("/api/monitor/events/batch", headers=student["headers"],
                    json={"attempt_id": attempt_id, "events": events})
    assert sent.status_code == 201, sent.text
    assert api.submit(student, attempt_id, {"e1": text}).status_code == 200


def wait_for(condition, seconds: float = 60, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {seconds} s")


def analysed(db, attempt_id: str) -> bool:
    return db.execute("SELECT analysis_status = 'done' FROM exam_attempts WHERE id = %s",
                      (attempt_id,)).fetchone()[0]


def settled(db, exam_id: str, attempts: int) -> bool:
    """Every attempt ended, analysed (nothing pending) and final."""
    done, total = db.execute(
        "SELECT count(*) FILTER (WHERE analysis_status = 'done'"
        "                        AND integrity_score_status = 'final'), count(*)"
        " FROM exam_attempts WHERE exam_id = %s", (exam_id,)).fetchone()
    return total == attempts and done == attempts


class Sitting:
    """One exam sat by one student per behaviour, through the API."""

    def __init__(self, api: Api, labels: list[str]) -> None:
        self.api = api
        self.teacher = api.user("teacher")
        self.exam = api.exam(self.teacher, **ESSAY_EXAM)
        self.students = {label: api.user() for label in labels}
        self.attempts: dict[str, str] = {}

    def start(self, label: str) -> str:
        self.attempts[label] = self.api.start(self.students[label], self.exam)["attempt_id"]
        return self.attempts[label]

    def finish(self, label: str) -> None:
        behave(self.api, self.students[label], self.attempts[label], label)

    def view(self, label: str) -> dict:
        response = self.api.get(f"/api/teacher/attempts/{self.attempts[label]}",
                                headers=self.teacher["headers"])
        assert response.status_code == 200, response.text
        return response.json()

    def analytics(self) -> dict:
        return self.api.get(f"/api/teacher/exams/{self.exam['id']}/analytics",
                            headers=self.teacher["headers"]).json()

    def alerts(self) -> dict[str, dict]:
        """The exam's low_integrity alerts by behaviour."""
        items = self.api.get("/api/teacher/alerts", headers=self.teacher["headers"], params={
            "exam_id": self.exam["id"], "kind": "low_integrity", "limit": 500}).json()["items"]
        label_of = {a: label for label, a in self.attempts.items()}
        return {label_of[a["attempt_id"]]: a for a in items}

    def final(self) -> dict[str, tuple]:
        """Each behaviour's integrity score, its status and its alert's severity."""
        label_of = {s["id"]: label for label, s in self.students.items()}
        alerts = self.alerts()
        result = {}
        for entry in self.analytics()["students"]:
            (attempt,) = entry["attempts"]
            label = label_of[entry["student_id"]]
            alert = alerts.get(label)
            result[label] = (attempt["integrity_score"], attempt["integrity_score_status"],
                             alert and (alert["severity"], alert["score_status"]))
        return result


@pytest.fixture()
def quiet(database_url: str, server_env: dict[str, str]) -> Iterator[tuple[Api, str, dict]]:
    """A server of its own database with no worker: jobs wait in the queue until a
    `veritas worker` is started."""
    from veritas.db.migrate import upgrade
    from veritas.db.roles import ensure_runtime_login

    url = make_database(database_url, f"veritas_final_{uuid.uuid4().hex[:8]}")
    try:
        upgrade(url)
        env = server_env | {"DATABASE_URL": ensure_runtime_login(url),
                            "MIGRATION_DATABASE_URL": url, "EMBEDDED_WORKER": "false"}
        with ServerProcess(env) as server, Api(server.base_url) as client:
            client.create_admin_cli(env)
            yield client, url, env
    finally:
        drop_database(database_url, url)


def test_final_scores_do_not_depend_on_order_or_backlog(api: Api, db, quiet) -> None:
    labels = list(BEHAVIOURS)

    # 1. Submitted one by one and analysed at once, the suspicious ones first: the first
    # analyses have no population to compare with, the later ones a growing one.
    first = Sitting(api, labels)
    for label in labels:
        first.start(label)
    provisional = {}
    order = ["light", "paster-a", "copier"] + [x for x in labels
                                               if x not in ("light", "paster-a", "copier")]
    for n, label in enumerate(order, start=1):
        first.finish(label)
        wait_for(lambda label=label: analysed(db, first.attempts[label]),
                 what=f"{label}'s analysis")
        view = first.view(label)
        provisional[label] = view["integrity_score"]
        if n < len(order):
            # Others are still writing: the exam has not settled, and the score says so.
            assert view["integrity_score_status"] == "provisional"
            assert view["behavior_analysis"]["score_status"] == "provisional"
    wait_for(lambda: settled(db, first.exam["id"], len(labels)), what="the first exam's batch")
    one_by_one = first.final()

    # 2. An artificial backlog: every attempt submitted, in the reverse order, before any
    # analysis runs; then a worker works the queue off, two analyses at a time.
    client, url, env = quiet
    second = Sitting(client, labels)
    for label in labels:
        second.start(label)
    for label in reversed(labels):
        second.finish(label)
    with psycopg.connect(url, autocommit=True) as queue_db:
        pending = queue_db.execute(
            "SELECT count(*) FROM exam_attempts WHERE exam_id = %s"
            " AND analysis_status = 'pending' AND integrity_score IS NULL",
            (second.exam["id"],)).fetchone()[0]
        assert pending == len(labels)  # nothing analysed yet: the whole exam is the backlog
        worker = subprocess.Popen([sys.executable, "-m", "veritas.cli", "worker"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: settled(queue_db, second.exam["id"], len(labels)),
                     what="the backlog's batch")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    backlog = second.final()

    # 3. A trickle in a shuffled order: each student starts and submits alone, so the exam
    # settles after every one of them and each late attempt has the whole exam rescored.
    third = Sitting(api, labels)
    for n, label in enumerate(random.Random(3).sample(labels, len(labels)), start=1):
        third.start(label)
        third.finish(label)
        wait_for(lambda n=n: settled(db, third.exam["id"], n), what=f"batch {n}")
    trickle = third.final()

    assert one_by_one == backlog == trickle
    assert {status for _, status, _ in one_by_one.values()} == {"final"}
    assert one_by_one["paster-a"] == one_by_one["paster-b"]
    honest = {one_by_one[f"honest-{i}"][0] for i in range(1, 6)}
    assert min(honest) > one_by_one["light"][0] > one_by_one["paster-a"][0]
    # The alerts follow the final score, whichever order produced it.
    assert one_by_one["paster-a"][2] == ("critical", "final")
    assert one_by_one["light"][2] == ("warning", "final")
    assert one_by_one["honest-3"][2] is None
    # And the bug the batch fixes did show: scored against the reference scales before any
    # population existed, the light paster looked fine.
    assert provisional["light"] > one_by_one["light"][0] + 0.15


def test_teacher_views_mark_provisional_scores_until_the_batch(api: Api, db) -> None:
    labels = ["paster-a", "honest-1", "honest-2", "light"]
    sitting = Sitting(api, labels)
    for label in labels:
        sitting.start(label)
    for label in labels[:-1]:  # the light paster is still writing
        sitting.finish(label)
    for label in labels[:-1]:
        wait_for(lambda label=label: analysed(db, sitting.attempts[label]))

    view = sitting.view("paster-a")
    assert view["integrity_score_status"] == "provisional"
    assert view["behavior_analysis"]["score_status"] == "provisional"
    analytics = sitting.analytics()
    assert analytics["analytics"]["avg_integrity_status"] == "provisional"
    scored = [s for s in analytics["students"] if s["integrity_score"] is not None]
    assert len(scored) == 3
    assert {s["integrity_score_status"] for s in scored} == {"provisional"}
    assert {a["integrity_score_status"] for s in scored for a in s["attempts"]} == {"provisional"}
    dashboard = api.get("/api/teacher/dashboard", headers=sitting.teacher["headers"]).json()
    (mine,) = [e for e in dashboard["exams"] if e["exam_id"] == sitting.exam["id"]]
    assert mine["avg_integrity_status"] == "provisional"
    assert sitting.alerts()["paster-a"]["score_status"] == "provisional"
    (dashboard_alert,) = [a for a in dashboard["alerts"] if a["kind"] == "low_integrity"
                          and a["attempt_id"] == sitting.attempts["paster-a"]]
    assert dashboard_alert["score_status"] == "provisional"
    student = api.get(f"/api/teacher/students/{sitting.students['paster-a']['id']}",
                      headers=sitting.teacher["headers"]).json()
    assert student["attempts"][0]["integrity_score_status"] == "provisional"
    assert exported(sitting, "grades.csv", "paster-a")["integrity_score_status"] == "provisional"
    assert exported(sitting, "alerts.csv", "paster-a")["score_status"] == "provisional"
    assert "provisional" in report(sitting, "paster-a")

    sitting.finish("light")  # the last open attempt ends: the exam settles
    wait_for(lambda: settled(db, sitting.exam["id"], len(labels)), what="the batch")
    assert sitting.view("paster-a")["integrity_score_status"] == "final"
    assert sitting.view("paster-a")["behavior_analysis"]["score_status"] == "final"
    analytics = sitting.analytics()
    assert analytics["analytics"]["avg_integrity_status"] == "final"
    assert {s["integrity_score_status"] for s in analytics["students"]} == {"final"}
    assert sitting.alerts()["paster-a"]["score_status"] == "final"
    dashboard = api.get("/api/teacher/dashboard", headers=sitting.teacher["headers"]).json()
    (mine,) = [e for e in dashboard["exams"] if e["exam_id"] == sitting.exam["id"]]
    assert mine["avg_integrity_status"] == "final"
    assert exported(sitting, "grades.csv", "paster-a")["integrity_score_status"] == "final"
    assert exported(sitting, "alerts.csv", "paster-a")["score_status"] == "final"
    assert "provisional" not in report(sitting, "paster-a")


def exported(sitting: Sitting, name: str, label: str) -> dict[str, str]:
    """The behaviour's row of an exam export (its low_integrity alert's, for alerts.csv)."""
    response = sitting.api.get(f"/api/teacher/exams/{sitting.exam['id']}/export/{name}",
                               headers=sitting.teacher["headers"])
    assert response.status_code == 200, response.text
    rows = list(csv.DictReader(io.StringIO(response.text)))
    return next(r for r in rows if r["attempt_id"] == sitting.attempts[label]
                and r.get("kind", "low_integrity") == "low_integrity")


def report(sitting: Sitting, label: str) -> str:
    response = sitting.api.get(f"/api/teacher/attempts/{sitting.attempts[label]}/report",
                               headers=sitting.teacher["headers"])
    assert response.status_code == 200, response.text
    return response.text


def audits(db, exam_id: str) -> list[tuple]:
    return db.execute(
        "SELECT action, details->>'attempt_id', details->>'severity',"
        " details->>'previous_severity', user_id FROM audit_logs"
        " WHERE action LIKE '%%integrity_alert' AND details->>'exam_id' = %s"
        " ORDER BY chain_seq NULLS LAST, created_at", (exam_id,)).fetchall()


def test_the_batch_raises_keeps_and_withdraws_alerts_and_audits_each(api: Api, db) -> None:
    # The light paster and a paster are analysed first, against the reference scales.
    labels = ["light", "paster-a"] + [f"honest-{i}" for i in range(6)]
    sitting = Sitting(api, labels)
    for label in labels:
        sitting.start(label)
    for label in labels:
        sitting.finish(label)
        wait_for(lambda label=label: analysed(db, sitting.attempts[label]))
        if label == "paster-a":
            before = sitting.alerts()
            assert "light" not in before  # 0.82 against the reference: no concern
            assert (before["paster-a"]["severity"], before["paster-a"]["score_status"]) == (
                "critical", "provisional")
            kept_id = before["paster-a"]["id"]
    wait_for(lambda: settled(db, sitting.exam["id"], len(labels)), what="the batch")
    after = sitting.alerts()
    assert (after["light"]["severity"], after["light"]["score_status"]) == ("warning", "final")
    assert after["paster-a"]["id"] == kept_id  # the same alert, now final
    assert after["paster-a"]["score_status"] == "final"
    exam = sitting.exam["id"]
    assert audits(db, exam) == [
        ("raise_integrity_alert", sitting.attempts["light"], "warning", None, None),
        ("keep_integrity_alert", sitting.attempts["paster-a"], "critical", "critical", None),
    ]

    # An open-book exam: everyone pastes about half. The first one analysed looks unusual
    # against the reference scales (a warning); against the exam, nobody does.
    half = {f"half-{i}": (essay(40 + i), 0.48) for i in range(6)}
    BEHAVIOURS.update(half)
    try:
        open_book = Sitting(api, list(half))
        for label in half:
            open_book.start(label)
        for label in half:
            open_book.finish(label)
            wait_for(lambda label=label: analysed(db, open_book.attempts[label]))
            if label == "half-0":
                early = open_book.alerts()["half-0"]
                assert (early["severity"], early["score_status"]) == ("warning", "provisional")
        wait_for(lambda: settled(db, open_book.exam["id"], len(half)), what="the batch")
    finally:
        for label in half:
            del BEHAVIOURS[label]
    assert open_book.alerts() == {}
    # The first four were analysed before five attempts could make a population.
    assert audits(db, open_book.exam["id"]) == [
        ("withdraw_integrity_alert", open_book.attempts[f"half-{i}"], None, "warning", None)
        for i in range(4)]
    (batch,) = db.execute(
        "SELECT details FROM audit_logs WHERE action = 'finalize_integrity_scores'"
        " AND resource_id = %s", (open_book.exam["id"],)).fetchall()
    assert batch[0]["alerts"] == {"raised": 0, "kept": 0, "withdrawn": 4}
    assert batch[0]["population"] == 6 and batch[0]["reason"] == "settled"


def _run(coro):
    return asyncio.run(coro)


async def _finalize_twice(url: str, exam_id: uuid.UUID) -> list:
    settings = Settings(database_url=url, debug=True)
    engines = [create_engine(settings, url) for _ in range(2)]
    try:
        return await asyncio.gather(*(
            final_scores.finalize(create_sessionmaker(e), exam_id, "quiet") for e in engines))
    finally:
        for engine in engines:
            await engine.dispose()


def test_two_batches_at_once_do_the_work_once(api: Api, db, runtime_url: str) -> None:
    labels = ["paster-a", "light", "honest-1", "honest-2", "honest-3", "honest-4"]
    sitting = Sitting(api, labels)
    for label in labels:
        sitting.start(label)
    for label in labels[:-1]:  # honest-4 keeps writing, so no batch is queued by itself
        sitting.finish(label)
    for label in labels[:-1]:
        wait_for(lambda label=label: analysed(db, sitting.attempts[label]))
    exam_id = uuid.UUID(sitting.exam["id"])

    # The runtime role, as the worker runs it; one batch waits for the other's lock.
    outcomes = _run(_finalize_twice(runtime_url, exam_id))
    done = [o for o in outcomes if o is not None]
    assert len(done) == 1 and outcomes.count(None) == 1  # the second found nothing to do
    assert done[0].scored == 5 and done[0].population == 5 and done[0].version == 1
    statuses = db.execute(
        "SELECT integrity_score_status, count(*) FROM exam_attempts WHERE exam_id = %s"
        " AND status = 'completed' GROUP BY 1", (str(exam_id),)).fetchall()
    assert statuses == [("final", 5)]
    per_attempt = db.execute(
        "SELECT count(*) FROM analysis_alerts WHERE exam_id = %s AND kind = 'low_integrity'"
        " GROUP BY exam_attempt_id HAVING count(*) > 1", (str(exam_id),)).fetchall()
    assert per_attempt == []
    assert db.execute("SELECT count(*) FROM audit_logs WHERE action = 'finalize_integrity_scores'"
                      " AND resource_id = %s", (str(exam_id),)).fetchone()[0] == 1
    scores = dict(db.execute("SELECT id, integrity_score FROM exam_attempts WHERE exam_id = %s",
                             (str(exam_id),)).fetchall())
    # Once more, later: still nothing to do, nothing changes.
    assert _run(_finalize_twice(runtime_url, exam_id)) == [None, None]
    assert dict(db.execute("SELECT id, integrity_score FROM exam_attempts WHERE exam_id = %s",
                           (str(exam_id),)).fetchall()) == scores


def test_a_batch_waits_for_the_exams_lock(api: Api, db, database_url: str,
                                          runtime_url: str) -> None:
    labels = ["honest-1", "honest-2", "honest-3"]
    sitting = Sitting(api, labels)
    for label in labels:
        sitting.start(label)
    for label in labels[:-1]:
        sitting.finish(label)
    for label in labels[:-1]:
        wait_for(lambda label=label: analysed(db, sitting.attempts[label]))
    exam_id = uuid.UUID(sitting.exam["id"])
    results: list = []
    with psycopg.connect(database_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                       (f"veritas:final_scores:{exam_id}",))
        batch = threading.Thread(target=lambda: results.append(
            _run(_finalize_twice(runtime_url, exam_id))))
        batch.start()
        time.sleep(1.5)
        assert batch.is_alive() and not results  # waiting for the lock
        holder.commit()
    batch.join(timeout=60)
    assert results and sorted(results[0], key=lambda o: o is None)[0].scored == 2


async def sweep(url: str, now: datetime) -> dict[uuid.UUID, str]:
    """The worker's settle sweep at `now`, with the default quiet period (15 minutes)."""
    engine = create_engine(Settings(database_url=url, debug=True), url)
    try:
        async with unit_of_work(create_sessionmaker(engine), SYSTEM) as session:
            return await final_scores.queue_swept(session, now, timedelta(minutes=15))
    finally:
        await engine.dispose()


def test_a_quiet_exam_is_rescored_though_an_attempt_stays_open(api: Api, db,
                                                               runtime_url: str) -> None:
    labels = ["paster-a", "honest-1", "honest-2"]
    sitting = Sitting(api, labels)
    for label in labels:
        sitting.start(label)
    for label in labels[:-1]:  # honest-2's tab stays open
        sitting.finish(label)
    for label in labels[:-1]:
        wait_for(lambda label=label: analysed(db, sitting.attempts[label]))

    exam_id = uuid.UUID(sitting.exam["id"])
    assert exam_id not in _run(sweep(runtime_url, datetime.now(UTC)))  # submits just now
    assert _run(sweep(runtime_url, datetime.now(UTC) + timedelta(minutes=16)))[exam_id] == "quiet"
    # The server's worker runs the queued batch.
    wait_for(lambda: sitting.view("paster-a")["integrity_score_status"] == "final",
             what="the quiet exam's batch")
    assert db.execute("SELECT reason FROM integrity_populations WHERE exam_id = %s",
                      (str(exam_id),)).fetchone()[0] == "quiet"
    # The open attempt ends later: it is scored, provisionally, then the exam is rescored.
    sitting.finish("honest-2")
    wait_for(lambda: settled(db, sitting.exam["id"], len(labels)), what="the late batch")
    assert db.execute("SELECT version, jsonb_array_length(members) FROM integrity_populations"
                      " WHERE exam_id = %s", (str(exam_id),)).fetchone() == (2, 3)


def test_only_the_system_reads_a_population(api: Api, db, runtime_url: str) -> None:
    # Other attempts' signals by attempt id: no teacher's, student's or anonymous business.
    labels = ["honest-1", "honest-2"]
    sitting = Sitting(api, labels)
    for label in labels:
        sitting.start(label)
        sitting.finish(label)
    wait_for(lambda: settled(db, sitting.exam["id"], len(labels)), what="the batch")

    async def visible(caller: Caller) -> int:
        engine = create_engine(Settings(database_url=runtime_url, debug=True), runtime_url)
        try:
            async with unit_of_work(create_sessionmaker(engine), caller) as session:
                return int(await session.scalar(text(
                    "SELECT count(*) FROM integrity_populations WHERE exam_id = :e"),
                    {"e": sitting.exam["id"]}))
        finally:
            await engine.dispose()

    teacher = Caller(uuid.UUID(sitting.teacher["id"]), "teacher")
    student = Caller(uuid.UUID(sitting.students["honest-1"]["id"]), "student")
    assert _run(visible(SYSTEM)) == 1
    assert _run(visible(teacher)) == _run(visible(student)) == 0
    assert _run(visible(Caller(None, "anonymous"))) == 0


def test_a_closed_exam_is_rescored_though_an_attempt_with_extra_time_is_open(
    api: Api, db, runtime_url: str
) -> None:
    labels = ["light", "honest-1", "honest-2"]
    sitting = Sitting(api, labels)
    for label in labels:
        sitting.start(label)
    for label in labels[:-1]:  # honest-2 is still writing (extra time, say)
        sitting.finish(label)
    for label in labels[:-1]:
        wait_for(lambda label=label: analysed(db, sitting.attempts[label]))
    exam_id = uuid.UUID(sitting.exam["id"])
    assert exam_id not in _run(sweep(runtime_url, datetime.now(UTC)))  # open, and not quiet
    closed = api.patch(f"/api/teacher/exams/{exam_id}", headers=sitting.teacher["headers"],
                       json={"closes_at": datetime.now(UTC).isoformat()})
    assert closed.status_code == 200, closed.text
    assert _run(sweep(runtime_url, datetime.now(UTC)))[exam_id] == "closed"
    wait_for(lambda: sitting.view("light")["integrity_score_status"] == "final",
             what="the closed exam's batch")
    assert db.execute("SELECT reason, jsonb_array_length(members) FROM integrity_populations"
                      " WHERE exam_id = %s", (str(exam_id),)).fetchone() == ("closed", 2)
