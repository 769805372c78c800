"""Classes: a teacher's groups of students, their enrolment and rosters, and the exams
assigned to them."""
