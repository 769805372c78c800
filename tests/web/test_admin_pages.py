"""The admin's user pages in Chromium: create a user without a password and hand out the
one-time link, edit the role, issue a reset link, lock only after confirming, and read the
audit log by name with its action list."""

from __future__ import annotations

from typing import Any

from tests.support import Api, unique
from tests.web.test_pages import filter_users, shot, sign_in

NEW_PASSWORD = "Correct-Horse-Battery-9"


def test_admin_creates_edits_resets_and_locks_a_user(
    api: Api, admin: dict, open_page: Any, page_errors: list[str]
) -> None:
    page = open_page()
    sign_in(page, admin)
    name = unique("newuser")
    page.get_by_label("Email", exact=True).fill(f"{name}@school.example")
    page.get_by_label("Username", exact=True).fill(name)
    page.get_by_label("Full name (optional)").fill("Katherine Johnson")
    page.get_by_label("Role", exact=True).last.select_option("student")
    page.get_by_role("button", name="Create user").click()
    page.get_by_text(f"Student {name} created").wait_for()
    link = page.get_by_label(f"Set-password link for {name}").input_value()
    assert "#/set-password?token=" in link
    page.get_by_role("button", name="Copy link").click()
    page.get_by_text("Copied.").or_(page.get_by_text("to copy the selected link")).wait_for()
    shot(page, "admin-user-created")
    token = link.split("token=", 1)[1]
    assert api.post("/api/auth/set-password",
                    json={"token": token, "password": NEW_PASSWORD}).status_code == 204
    user = api.login(f"{name}@school.example", NEW_PASSWORD)

    row = filter_users(page, name, user["id"])

    # Locking asks first; saying no changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name=f"Lock {name}").click()
    assert row.get_by_role("cell", name="active", exact=True).is_visible()
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 200
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.get_by_role("button", name=f"Lock {name}").click()
    page.get_by_text(f"{name} is now locked.").wait_for()
    assert asked and name in asked[0]
    assert api.get("/api/auth/me", headers=user["headers"]).status_code == 401
    row.get_by_role("button", name=f"Unlock {name}").click()
    page.get_by_text(f"{name} is now unlocked.").wait_for()

    row.get_by_role("button", name=f"Edit {name}").click()
    form = page.get_by_role("form", name=f"Edit {name}")
    form.get_by_label("Role").select_option("teacher")
    form.get_by_role("button", name="Save").click()
    page.get_by_text(f"{name} is saved.").wait_for()
    assert row.get_by_role("cell", name="teacher", exact=True).is_visible()
    assert api.login(f"{name}@school.example", NEW_PASSWORD)["role"] == "teacher"

    row.get_by_role("button", name=f"Reset password of {name}").click()
    reset = page.get_by_label(f"Password reset link for {name}").input_value()
    assert "#/set-password?token=" in reset and reset != link
    shot(page, "admin-user-reset-link")

    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action", exact=True).select_option("change_role")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_function("""() => { const rows = [...document.querySelectorAll('tbody tr')];
        return rows.length > 0 && rows.every(r => r.children[1]
            && r.children[1].textContent === 'change_role'); }""")
    first = page.locator("tbody tr").first
    assert admin["username"] in first.inner_text()
    shot(page, "admin-audit-by-name")
    assert page_errors == []
