"""Cut tests/oulad/fixture/ from the shared OULAD-2013 data (re-run it to rebuild the fixture).

    .venv/bin/python tests/oulad/cut_fixture.py /work/shared/data/oulad-2013

Module BBB, presentations 2013B and 2013J, rows kept verbatim. The students are chosen by
rule (first ids in sorted order), so that the fixture holds every quirk the importer and the
eval must cope with; each choice is printed with its reason.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

MODULE = "BBB"
PRESENTATIONS = ("2013B", "2013J")
OUT = Path(__file__).resolve().parent / "fixture"


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _write(name: str, header: list[str], rows: list[dict[str, str]]) -> None:
    with (OUT / name).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(source: Path) -> None:
    tables = {name: _read(source / name) for name in (
        "courses.csv", "assessments.csv", "studentInfo.csv", "studentRegistration.csv",
        "studentAssessment.csv")}
    assessments = [r for r in tables["assessments.csv"][1] if r["code_module"] == MODULE
                   and r["code_presentation"] in PRESENTATIONS]
    presentation_of = {r["id_assessment"]: r["code_presentation"] for r in assessments}
    info = {(r["code_presentation"], r["id_student"]): r for r in tables["studentInfo.csv"][1]
            if r["code_module"] == MODULE and r["code_presentation"] in PRESENTATIONS}
    dates = {(r["code_presentation"], r["id_student"]): r
             for r in tables["studentRegistration.csv"][1]
             if r["code_module"] == MODULE and r["code_presentation"] in PRESENTATIONS}
    results = [r for r in tables["studentAssessment.csv"][1] if r["id_assessment"] in presentation_of]
    banked = {(presentation_of[r["id_assessment"]], r["id_student"]) for r in results
              if r["is_banked"] == "1"}
    unmarked = {(presentation_of[r["id_assessment"]], r["id_student"]) for r in results
                if not r["score"]}

    def unreg(key: tuple[str, str]) -> int | None:
        text = dates[key]["date_unregistration"]
        return int(text) if text else None

    def reg(key: tuple[str, str]) -> int | None:
        text = dates[key]["date_registration"]
        return int(text) if text else None

    def withdrawn(key: tuple[str, str]) -> bool:
        return info[key]["final_result"] == "Withdrawn"

    rules = [
        ("in both presentations (repeats BBB)", 3, lambda k: k[0] == "2013J"
         and ("2013B", k[1]) in info),
        ("banked result", 2, lambda k: k in banked),
        ("unmarked result (missing score)", 2, lambda k: k in unmarked),
        ("no registration date", 2, lambda k: reg(k) is None),
        ("withdrew before the start", 1, lambda k: (unreg(k) or 1) < 0),
        ("withdrew before day 30", 2, lambda k: unreg(k) is not None and 0 <= unreg(k) < 30),
        ("unregistered on day 60 itself", 1, lambda k: unreg(k) == 60),
        ("withdrew between days 30 and 120", 4, lambda k: withdrawn(k)
         and unreg(k) is not None and 30 < unreg(k) <= 120),
        ("withdrew after day 120", 3, lambda k: withdrawn(k) and (unreg(k) or 0) > 120),
        ("unregistered but Fail, not Withdrawn", 1, lambda k: not withdrawn(k)
         and unreg(k) is not None),
        ("registered after day 30", 1, lambda k: (reg(k) or 0) > 30),
        ("completed the course", 12, lambda k: not withdrawn(k) and unreg(k) is None),
    ]
    chosen: dict[tuple[str, str], str] = {}
    for presentation in PRESENTATIONS:
        keys = sorted((k for k in info if k[0] == presentation), key=lambda k: int(k[1]))
        for reason, count, rule in rules:
            if reason.startswith("completed") and presentation == "2013B":
                count = 6
            for key in [k for k in keys if k not in chosen and rule(k)][:count]:
                chosen[key] = reason
                if reason.startswith("in both"):
                    chosen[("2013B", key[1])] = reason
    for (presentation, student), reason in sorted(chosen.items()):
        print(f"{presentation} {student:>8}  {reason}")
    OUT.mkdir(exist_ok=True)
    header, rows = tables["courses.csv"]
    _write("courses.csv", header, [r for r in rows if r["code_module"] == MODULE
                                   and r["code_presentation"] in PRESENTATIONS])
    _write("assessments.csv", tables["assessments.csv"][0], assessments)
    for name in ("studentInfo.csv", "studentRegistration.csv"):
        header, rows = tables[name]
        _write(name, header, [r for r in rows if r["code_module"] == MODULE
                              and (r["code_presentation"], r["id_student"]) in chosen])
    _write("studentAssessment.csv", tables["studentAssessment.csv"][0],
           [r for r in results if (presentation_of[r["id_assessment"]], r["id_student"]) in chosen])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
