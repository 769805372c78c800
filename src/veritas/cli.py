"""The `veritas` command: serve, migrate, create-admin, refresh-views, demo, audit verify."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import secrets
import signal
import sys
from pathlib import Path

from veritas.config import MIN_SECRET_BYTES


def _data_dir() -> Path:
    return Path(os.environ.get("VERITAS_DATA_DIR", ".veritas"))


def database_url(*, stop_on_exit: bool = True) -> str:
    """DATABASE_URL (the runtime role), or the embedded server's when it is unset: started
    on demand, migrated by its owner and given its runtime role."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from veritas.db.embedded import start_migrated

    url, owner = start_migrated(_data_dir(), stop_on_exit=stop_on_exit)
    # Worker processes and Settings read them from here.
    os.environ["DATABASE_URL"] = url
    os.environ["MIGRATION_DATABASE_URL"] = owner
    return url


def migration_url() -> str:
    """Where migrations run: MIGRATION_DATABASE_URL (the owner), else the database URL."""
    url = database_url()
    return os.environ.get("MIGRATION_DATABASE_URL") or url


def ensure_local_secret() -> None:
    """Local (embedded) runs keep a generated JWT secret in the data dir, mode 0600."""
    if os.environ.get("JWT_SECRET"):
        return
    path = _data_dir() / "jwt_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        print(f"generated a JWT secret in {path}", file=sys.stderr)
    os.chmod(path, 0o600)
    secret = path.read_text().strip()
    if len(secret.encode()) < MIN_SECRET_BYTES:
        sys.exit(f"{path} holds a secret shorter than {MIN_SECRET_BYTES} bytes")
    os.environ["JWT_SECRET"] = secret


def _exit_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _share_debug_secret() -> None:
    """DEBUG without JWT_SECRET: one random key for this run, handed to every worker through
    the environment (a key per process would refuse the other workers' tokens)."""
    os.environ["JWT_SECRET"] = secrets.token_urlsafe(48)
    print("DEBUG without JWT_SECRET: a random signing key for this run; tokens end with it",
          file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from veritas.config import Settings
    from veritas.db.migrate import upgrade
    from veritas.http_protocol import IMPORT_PATH
    from veritas.ops import user_count

    # systemd and container runtimes stop a service with SIGTERM: leave as on Ctrl-C, through
    # the interpreter's exit, which stops the embedded PostgreSQL (uvicorn re-raises the
    # signal after its own graceful shutdown; Python's default would just die).
    signal.signal(signal.SIGTERM, _exit_quietly)
    embedded = not os.environ.get("DATABASE_URL")
    url = database_url()
    if embedded:
        ensure_local_secret()
    try:
        settings = Settings()  # refuse to start on unsafe settings before anything listens
    except ValueError as exc:
        sys.exit(f"refusing to start: {exc}")
    if settings.debug and not settings.jwt_secret:
        _share_debug_secret()
    upgrade(migration_url())
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{host}:{args.port}"
    print(f"serving on {base} (API docs at {base}/docs)", flush=True)
    if asyncio.run(user_count(url)) == 0:
        print("no users yet: in another terminal, `veritas demo` fills a demo school and"
              " `veritas create-admin` makes your admin account", flush=True)
    try:
        uvicorn.run("veritas.app:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, loop="uvloop", http=IMPORT_PATH,
                    log_level=settings.log_level.lower(), proxy_headers=False)
    except KeyboardInterrupt:  # Ctrl-C, after uvicorn's graceful shutdown: no traceback
        sys.exit(130)


def cmd_migrate(_args: argparse.Namespace) -> None:
    from veritas.db.migrate import upgrade

    upgrade(migration_url())
    print("migrations applied")


def _ask(value: str | None, prompt: str, secret: bool = False) -> str:
    if value:
        return value
    if not sys.stdin.isatty():
        sys.exit(f"missing --{prompt.lower().replace(' ', '-')} (no terminal to ask on)")
    return getpass.getpass(f"{prompt}: ") if secret else input(f"{prompt}: ")


def cmd_create_admin(args: argparse.Namespace) -> None:
    from veritas.ops import create_admin

    email = _ask(args.email, "Email")
    username = _ask(args.username, "Username")
    password = _ask(args.password, "Password", secret=True)
    try:
        user_id = asyncio.run(create_admin(database_url(), email, username, password))
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    print(f"admin created: {user_id}")


def cmd_refresh_views(_args: argparse.Namespace) -> None:
    from veritas.db.tools import refresh_views

    asyncio.run(refresh_views(database_url()))
    print("materialized views refreshed")


def cmd_worker(_args: argparse.Namespace) -> None:
    from veritas.config import Settings
    from veritas.jobs import run_worker

    url = database_url()
    asyncio.run(run_worker(Settings(database_url=url, debug=True), url, install_signals=True))


def cmd_recompute(_args: argparse.Namespace) -> None:
    from veritas.ops import recompute

    count = asyncio.run(recompute(database_url()))
    print(f"recomputed {count} students")


def cmd_rescore(args: argparse.Namespace) -> None:
    from veritas.ops import rescore

    try:
        count = asyncio.run(rescore(database_url(), args.exam))
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    print(f"queued {count} attempts for re-analysis")


def cmd_audit_verify(_args: argparse.Namespace) -> None:
    from veritas.audit.chain import verify

    verdict = asyncio.run(verify(database_url()))
    print(verdict.text())
    if not verdict.ok:
        sys.exit(1)


def cmd_demo(args: argparse.Namespace) -> None:
    from veritas.demo import build_demo, reset_demo_passwords
    from veritas.errors import Invalid

    try:
        if args.reset_passwords:
            asyncio.run(reset_demo_passwords(database_url(), args.password))
        else:
            asyncio.run(build_demo(database_url(), password=args.password,
                                   students=args.students))
    except Invalid as exc:  # a --password the policy refuses
        sys.exit(f"error: {exc.detail}")


def cmd_import(args: argparse.Namespace) -> None:
    from veritas.oulad.files import OuladFormatError
    from veritas.oulad.importer import ImportConflict, import_oulad
    from veritas.oulad.progress import Progress

    try:
        summary = asyncio.run(import_oulad(database_url(), args.directory, progress=Progress()))
    except (OuladFormatError, ImportConflict) as exc:
        sys.exit(f"error: {exc}")
    for warning in summary.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(summary.text())


def _list_arg(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _cutoffs_arg(text: str) -> list[int]:
    try:
        days = [int(part) for part in _list_arg(text)]
    except ValueError:
        raise argparse.ArgumentTypeError("cutoffs are whole days, e.g. 30,60,90,120") from None
    if not days:
        raise argparse.ArgumentTypeError("give at least one cutoff day")
    return days


def cmd_eval(args: argparse.Namespace) -> None:
    from veritas.oulad.evaluate import run_eval
    from veritas.oulad.files import OuladFormatError
    from veritas.oulad.importer import ImportConflict

    try:
        asyncio.run(run_eval(database_url(), args.directory, cutoffs=args.cutoffs,
                             train=args.train_presentations, test=args.test_presentations,
                             model_path=args.model))
    except (OuladFormatError, ImportConflict, ValueError) as exc:
        sys.exit(f"error: {exc}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="veritas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations, then serve the API and pages")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)

    admin = sub.add_parser("create-admin", help="create an admin account")
    admin.add_argument("--email")
    admin.add_argument("--username")
    admin.add_argument("--password")
    admin.set_defaults(func=cmd_create_admin)

    sub.add_parser("refresh-views", help="refresh the materialized views").set_defaults(
        func=cmd_refresh_views
    )

    sub.add_parser("worker", help="run background jobs (analyses, view refreshes)").set_defaults(
        func=cmd_worker
    )
    sub.add_parser("recompute", help="rebuild students' denormalized rows from raw tables"
                   ).set_defaults(func=cmd_recompute)
    rescore = sub.add_parser("rescore", help="re-analyze an exam's ended attempts")
    rescore.add_argument("--exam", required=True, help="exam id")
    rescore.set_defaults(func=cmd_rescore)

    audit = sub.add_parser("audit", help="check the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="verify the audit log's hash chain; exit 1 at the"
                         " first broken link").set_defaults(func=cmd_audit_verify)

    demo = sub.add_parser("demo", help="fill an empty database with a believable school")
    demo.add_argument("--password", help="password for every demo account (default: random)")
    demo.add_argument("--students", type=int, default=40)
    demo.add_argument("--reset-passwords", action="store_true",
                      help="on a database that has the demo school: give every demo account a"
                           " new password (--password or random), print it, end their sessions")
    demo.set_defaults(func=cmd_demo)

    importer = sub.add_parser("import", help="load an external dataset (OULAD) into Veritas")
    importer.add_argument("source", choices=["oulad"])
    importer.add_argument("directory", type=Path, help="directory holding the OULAD CSVs")
    importer.set_defaults(func=cmd_import)

    evaluate = sub.add_parser("eval", help="import OULAD, then evaluate the dropout model on it")
    evaluate.add_argument("model_name", choices=["dropout"], metavar="dropout",
                          help="the model to evaluate")
    evaluate.add_argument("directory", type=Path, help="directory holding the OULAD CSVs")
    evaluate.add_argument("--cutoffs", type=_cutoffs_arg, default=[30, 60, 90, 120],
                          help="days from the presentation start (default 30,60,90,120)")
    evaluate.add_argument("--train-presentations", type=_list_arg,
                          help="presentations to fit the scorecard on before scoring (default:"
                               " the shipped model as it is, unless it learned from a test"
                               " presentation: then DIRECTORY's other presentations)")
    evaluate.add_argument("--test-presentations", type=_list_arg,
                          help="presentations to score (default: those in DIRECTORY not"
                               " trained on, else the latest)")
    evaluate.add_argument("--model", type=Path,
                          help="score with this model JSON from scripts/fit_dropout.py as it"
                               " is, never refitted (default: the shipped one)")
    evaluate.set_defaults(func=cmd_eval)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
