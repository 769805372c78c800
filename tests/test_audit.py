"""The audit trail: every listed action, in the action's own transaction, without secrets."""

from __future__ import annotations

import pytest

from tests.support import PASSWORD, Api, InTransaction
from veritas.audit import service as audit
from veritas.db.base import Role


def _actions(db, **where) -> list[str]:
    clauses = " AND ".join(f"{k} = %s" for k in where)
    return [r[0] for r in db.execute(f"SELECT action FROM audit_logs WHERE {clauses}",
                                     tuple(where.values()))]


def test_listed_actions_are_audited(api: Api, admin: dict, db) -> None:
    teacher, student, colleague = api.user("teacher"), api.user(), api.user("teacher")
    assert "register" in _actions(db, resource_id=student["id"])
    assert "login" in _actions(db, user_id=student["id"])
    exam = api.exam(teacher)
    api.patch(f"/api/teacher/exams/{exam['id']}", json={"topic": "Fractions"},
              headers=teacher["headers"])
    api.grant(teacher, exam, colleague)
    api.delete(f"/api/teacher/exams/{exam['id']}/permissions/{colleague['id']}",
               headers=teacher["headers"])
    exam_actions = _actions(db, resource_id=exam["id"])
    for action in ("create_exam", "modify_exam", "grant_exam_permission",
                   "revoke_exam_permission"):
        assert action in exam_actions
    attempt = api.start(student, exam)
    api.get(f"/api/teacher/students/{student['id']}", headers=teacher["headers"])
    api.get(f"/api/teacher/attempts/{attempt['attempt_id']}", headers=admin["headers"])
    assert "view_student_data" in _actions(db, user_id=teacher["id"])
    assert "view_student_data" in _actions(db, user_id=admin["id"], resource_id=attempt["attempt_id"])
    api.post(f"/api/admin/users/{student['id']}/lock", headers=admin["headers"])
    api.post(f"/api/admin/users/{student['id']}/unlock", headers=admin["headers"])
    assert {"lock_user", "unlock_user"} <= set(_actions(db, resource_id=student["id"]))
    logs = api.get("/api/admin/audit-logs", headers=admin["headers"],
                   params={"resource_id": student["id"], "limit": 500})
    assert logs.status_code == 200
    items = logs.json()["items"]
    assert [i["created_at"] for i in items] == sorted((i["created_at"] for i in items),
                                                      reverse=True)
    assert {"register", "lock_user", "unlock_user"} <= {i["action"] for i in items}
    assert "view_audit_logs" in _actions(db, user_id=admin["id"])
    me = api.login(teacher["email"])
    api.post("/api/auth/logout", headers=me["headers"])
    assert "logout" in _actions(db, user_id=teacher["id"])


def test_audit_rows_carry_ip_and_agent_and_no_secrets(api: Api, db) -> None:
    student = api.user()
    api.post("/api/auth/login", json={"email": student["email"], "password": PASSWORD},
             headers={"User-Agent": "exam-kiosk/2.1", "X-Forwarded-For": "198.51.100.7"})
    row = db.execute("SELECT host(ip_address), user_agent FROM audit_logs WHERE user_id = %s"
                     " AND action = 'login' ORDER BY created_at DESC LIMIT 1",
                     (student["id"],)).fetchone()
    assert row == ("198.51.100.7", "exam-kiosk/2.1")
    dump = db.execute("SELECT string_agg(details::text, ' ') FROM audit_logs").fetchone()[0]
    assert PASSWORD not in dump and "eyJ" not in dump


def test_untrusted_forwarded_for_is_ignored(api: Api, db, server_env) -> None:
    from tests.support import ServerProcess

    env = server_env | {"TRUSTED_PROXIES": "[]"}
    with ServerProcess(env) as direct, Api(direct.base_url) as client:
        student = api.user()
        client.post("/api/auth/login", json={"email": student["email"], "password": PASSWORD},
                    headers={"X-Forwarded-For": "198.51.100.99"})
    ip = db.execute("SELECT host(ip_address) FROM audit_logs WHERE user_id = %s AND action ="
                    " 'login' ORDER BY created_at DESC LIMIT 1", (student["id"],)).fetchone()[0]
    assert ip == "127.0.0.1"


def test_admin_user_filters(api: Api, admin: dict) -> None:
    teacher = api.user("teacher")
    found = api.get("/api/admin/users", headers=admin["headers"],
                    params={"q": teacher["username"].upper()}).json()["items"]
    assert [u["id"] for u in found] == [teacher["id"]]
    assert "password_hash" not in str(found)
    teachers = api.get("/api/admin/users", headers=admin["headers"],
                       params={"role": "teacher", "limit": 500}).json()["items"]
    assert teachers and all(u["role"] == "teacher" for u in teachers)
    assert api.get("/api/admin/users", headers=admin["headers"],
                   params={"role": "wizard"}).status_code == 422


def test_admin_user_list_is_an_audited_read_of_student_data(api: Api, admin: dict, db) -> None:
    student = api.user()
    found = api.get("/api/admin/users", headers=admin["headers"],
                    params={"q": student["username"]})
    assert [u["email"] for u in found.json()["items"]] == [student["email"]]
    row = db.execute("SELECT resource_type, details FROM audit_logs WHERE user_id = %s"
                     " AND action = 'view_student_data' AND details->>'view' = 'admin_users'"
                     " AND details->'student_ids' ? %s",
                     (admin["id"], student["id"])).fetchone()
    assert row is not None
    assert row[0] == "users" and row[1]["filters"] == {"q": student["username"]}


@pytest.mark.anyio
async def test_a_record_keeps_no_secret_and_stands_or_falls_with_its_action(
    tx: InTransaction,
) -> None:
    actor = await tx.user(Role.admin)
    async with tx.as_(actor) as session:
        await audit.record(session, tx.ctx, actor.user_id, "probe_kept", "user", actor.user_id, {
            "password": PASSWORD, "token": "eyJ.x.y", "refresh_token": "r", "reason": "kept"})
    with pytest.raises(RuntimeError):
        async with tx.as_(actor) as session:
            await audit.record(session, tx.ctx, actor.user_id, "probe_failed", "user")
            raise RuntimeError("the action fails after its record")
    assert await tx.rows("SELECT action, details, host(ip_address), user_agent FROM audit_logs"
                         " WHERE user_id = :u", u=actor.user_id) == [
        ("probe_kept", {"reason": "kept"}, "192.0.2.10", "in-process test")]
