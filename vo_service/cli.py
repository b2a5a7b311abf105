"""The ``pzvo`` command line: database, service, demo and benchmark data."""
from __future__ import annotations

import argparse
import os
import sys

from vo_service.config import Settings, load_settings
from vo_service.logs import configure_logging


def _cluster(settings: Settings):  # noqa: ANN202
    from vo_service.cluster import PrivateCluster

    return PrivateCluster(settings=settings)


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "url":
        print(settings.owner_url())
        return 0
    if settings.database_url and args.action in ("start", "stop", "status"):
        print(f"using external PostgreSQL from PZVO_DATABASE_URL; `db {args.action}` does nothing")
        return 0
    cluster = _cluster(settings)
    if args.action == "start":
        cluster.start()
        print(cluster.status())
    elif args.action == "stop":
        cluster.stop()
        print(cluster.status())
    elif args.action == "status":
        print(cluster.status())
        return 0 if cluster.is_running() else 3
    elif args.action == "migrate":
        from vo_service.database import migrate

        if settings.uses_private_cluster:
            cluster.start()
        migrate(settings)
        print("database migrated to head")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.demo import load_demo
    from vo_service.database import owner_engine

    counts = load_demo(owner_engine(settings), force=args.force)
    for name, rows in counts.items():
        print(f"{name}: {rows} rows")
    return 0


def cmd_bench_load(args: argparse.Namespace, settings: Settings) -> int:
    from ingest.bench import load_bench_table
    from vo_service.database import owner_engine

    seconds = load_bench_table(owner_engine(settings), args.rows, settings.var_dir / "bench",
                               force=args.force)
    print(f"bench.photoz: {args.rows} rows" + (f", loaded in {seconds:.1f} s" if seconds else " (reused)"))
    return 0


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from vo_service.auth import AuthService, UserExistsError
    from vo_service.database import owner_engine

    service = AuthService(engine=owner_engine(settings))
    try:
        token = (service.add_user(args.name, admin=args.admin) if args.action == "add"
                 else service.issue_token(args.name))
    except UserExistsError as exc:
        print(f"pzvo user: {exc}", file=sys.stderr)
        return 1
    except KeyError:
        print(f"pzvo user: no user {args.name!r}; create it with `pzvo user add`", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"pzvo user: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Replace this process with gunicorn serving the WSGI app."""
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    argv = [gunicorn, "vo_service.wsgi:app", "--bind", args.bind, "--workers", str(args.workers),
            "--worker-class", "gthread", "--threads", str(args.threads), "--timeout", "300",
            "--access-logfile", "-", "--access-logformat",
            '{"event":"access","remote":"%(h)s","request":"%(r)s","status":%(s)s,"bytes":"%(B)s","ms":%(M)s}']
    os.execv(gunicorn, argv)
    return 0  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pzvo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="the PostgreSQL database (private cluster under var/ by default)")
    db.add_argument("action", choices=["start", "stop", "status", "url", "migrate"])
    db.set_defaults(func=cmd_db)
    demo = sub.add_parser("demo", help="load the demo tables (pz.specz_demo, pz.photoz_demo)")
    demo.add_argument("--force", action="store_true", help="reload even when present")
    demo.set_defaults(func=cmd_demo)
    bench = sub.add_parser("bench-load", help="load bench.photoz from ../shared/bench/gen_photoz.py")
    bench.add_argument("--rows", type=int, default=1_000_000)
    bench.add_argument("--force", action="store_true")
    bench.set_defaults(func=cmd_bench_load)
    user = sub.add_parser("user", help="users and their bearer tokens (printed once, stored hashed)")
    user.add_argument("action", choices=["add", "token"], help="add a user, or issue another token")
    user.add_argument("name")
    user.add_argument("--admin", action="store_true", help="PZ Coordination Group (official products)")
    user.set_defaults(func=cmd_user)
    serve = sub.add_parser("serve", help="serve the web service with gunicorn")
    serve.add_argument("--bind", default="127.0.0.1:8000")
    serve.add_argument("--workers", type=int, default=max(2, os.cpu_count() or 2))
    serve.add_argument("--threads", type=int, default=4)
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
