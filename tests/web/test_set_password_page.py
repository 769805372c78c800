"""The set-password link in a real Chromium: a student from a class roster opens it, chooses a
password, signs in; the same link then says it was used."""

from __future__ import annotations

from typing import Any

from tests.support import Api, unique
from tests.web.test_pages import shot

NEW_PASSWORD = "Maple-Syrup-Sunrise-7"


def test_a_roster_student_sets_a_password_through_the_link(
    api: Api, open_page: Any, page_errors: list[str],
) -> None:
    teacher = api.user("teacher")
    klass = api.klass(teacher)
    name = unique("newpupil")
    report = api.roster(teacher, klass, "email,username,full_name,enrollment_id\n"
                                        f"{name}@school.example,{name},New Pupil,N-1\n").json()
    link = report["setup_links"][0]["setup_link"]
    exam = api.exam(teacher, class_ids=[klass["id"]])

    page = open_page()
    page.goto(link)
    page.get_by_role("heading", name="Choose your password").wait_for()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD + "x")
    page.get_by_role("button", name="Set password").click()
    page.get_by_text("The two passwords are not the same").wait_for()
    page.get_by_label("New password", exact=True).fill("password")
    page.get_by_label("New password again").fill("password")
    page.get_by_role("button", name="Set password").click()
    page.get_by_text("too common").wait_for()  # the server's own check, shown as it says
    shot(page, "set-password")
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.get_by_text("Your password is set").wait_for()
    page.get_by_label("Email or username").fill(name)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    # Their class's exam is in their list.
    page.get_by_role("link", name=f"Open exam: {exam['title']}").wait_for()

    again = open_page()
    again.goto(link)
    again.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    again.get_by_label("New password again").fill(NEW_PASSWORD)
    again.get_by_role("button", name="Set password").click()
    again.get_by_text("This link was used already or has expired").wait_for()
    shot(again, "set-password-used")
    assert page_errors == []
