"""The admin's account service in-process: who may stop being an admin, and what a role
change writes, on a transaction rolled back after each test."""

from __future__ import annotations

import pytest
from tests.support import InTransaction

from veritas.admin import service
from veritas.auth.schemas import AdminUserPatch
from veritas.db.base import Role
from veritas.errors import Conflict


@pytest.mark.anyio
async def test_the_last_active_admin_cannot_demote_themselves(tx: InTransaction) -> None:
    me = await tx.user(Role.admin)
    await tx.rows("UPDATE users SET is_active = false WHERE role = 'admin' AND id <> :me"
                  " RETURNING id", me=me.user_id)
    with pytest.raises(Conflict, match="last active admin"):
        async with tx.as_(me) as session:
            await service.update_user(session, me, me.user_id,
                                      AdminUserPatch(role=Role.teacher), tx.ctx)
    assert await tx.scalar("SELECT role::text FROM users WHERE id = :u", u=me.user_id) == "admin"
    # With a second active admin it may: an admin can hand the role on.
    other = await tx.user(Role.admin)
    async with tx.as_(me) as session:
        demoted = await service.update_user(session, me, me.user_id,
                                            AdminUserPatch(role=Role.teacher), tx.ctx)
    assert demoted.role is Role.teacher
    with pytest.raises(Conflict, match="last active admin"):
        async with tx.as_(other) as session:
            await service.update_user(session, other, other.user_id,
                                      AdminUserPatch(role=Role.student), tx.ctx)


@pytest.mark.anyio
async def test_a_role_change_writes_the_new_roles_profile_and_revokes_tokens(
    tx: InTransaction,
) -> None:
    admin = await tx.user(Role.admin)
    teacher = await tx.user(Role.teacher)
    await tx.rows("INSERT INTO auth_tokens (jti, user_id, token_type, family_id, expires_at)"
                  " VALUES (gen_random_uuid(), :u, 'access', gen_random_uuid(),"
                  " now() + interval '1 hour') RETURNING jti", u=teacher.user_id)
    async with tx.as_(admin) as session:
        await service.update_user(session, admin, teacher.user_id,
                                  AdminUserPatch(role=Role.student), tx.ctx)
    assert await tx.scalar("SELECT count(*) FROM student_profiles WHERE user_id = :u",
                           u=teacher.user_id) == 1
    assert await tx.scalar("SELECT count(*) FROM performance_metrics WHERE student_id = :u",
                           u=teacher.user_id) == 1
    assert await tx.scalar("SELECT count(*) FROM auth_tokens WHERE user_id = :u"
                           " AND revoked_at IS NULL", u=teacher.user_id) == 0
    assert await tx.rows("SELECT action FROM audit_logs WHERE resource_id = :u"
                         " AND action IN ('update_user', 'change_role') ORDER BY action",
                         u=str(teacher.user_id)) == [("change_role",), ("update_user",)]
