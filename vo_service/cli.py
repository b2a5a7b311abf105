"""The ``pzvo`` command line: database, service, demo and benchmark data."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli import add_subcommands as add_pipeline_commands
from pipeline.coop.cli import add_subcommands as add_validation_commands
from pipeline.tsm.cli import add_subcommands as add_tsm_commands
from vo_service.core.logs import configure_logging
from vo_service.core.settings import Settings, SettingsError, load_settings
from vo_service.exports.cli import add_subcommands as add_export_commands

if TYPE_CHECKING:
    from vo_service.auth import User
    from vo_service.cluster import PrivateCluster
    from vo_service.products import ProductRegistry
    from vo_service.services import Services


def _cluster(settings: Settings) -> PrivateCluster:
    from vo_service.cluster import PrivateCluster  # noqa: PLC0415 - deferred: see _services

    return PrivateCluster(settings=settings)


_BUILT: dict[Settings, Services] = {}


def _services(settings: Settings, *, pool_size: int | None = None) -> Services:
    """The process's services, built once by the composition root.

    The command modules are imported when a command runs, not when ``pzvo`` starts: the whole
    stack (Flask, SQLAlchemy, pyarrow, astropy, dask) takes about 2.3 s to import on the project's
    machine, and ``pzvo db status`` or ``pzvo user list`` need almost none of it.
    """
    if settings not in _BUILT:
        from vo_service.services import Services  # noqa: PLC0415 - deferred: the service stack, see above

        _BUILT[settings] = Services.build(settings, pool_size=pool_size)
    return _BUILT[settings]


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
        from vo_service.core.database import migrate  # noqa: PLC0415 - deferred: see _services

        if settings.uses_private_cluster:
            cluster.start()
        migrate(settings)
        print("database migrated to head")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from vo_service.demo import load_demo  # noqa: PLC0415 - deferred: see _services

    counts = load_demo(_services(settings), force=args.force)
    for name, rows in counts.items():
        print(f"{name}: {rows} rows")
    return 0


def cmd_bench_load(args: argparse.Namespace, settings: Settings) -> int:
    from vo_service.demo import load_bench_table  # noqa: PLC0415 - deferred: see _services

    seconds = load_bench_table(_services(settings).owner_engine, args.rows, settings.var_dir / "bench",
                               force=args.force)
    print(f"bench.photoz: {args.rows} rows" + (f", loaded in {seconds:.1f} s" if seconds else " (reused)"))
    return 0


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ") if value else "-"


#: Longest token lifetime: a century (PostgreSQL timestamps and timedelta both end somewhere).
MAX_TOKEN_DAYS = 36_500


def _days(value: str) -> timedelta:
    try:
        days = float(value)
    except ValueError:
        days = 0.0
    if not 0 < days <= MAX_TOKEN_DAYS:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days from 0 (excluded) to {MAX_TOKEN_DAYS}")
    return timedelta(days=days)


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from vo_service.auth import (  # noqa: PLC0415 - deferred: see _services
        UnknownTokenError,
        UnknownUserError,
        UserExistsError,
        UserOwnsProductsError,
    )

    service = _services(settings).auth
    try:
        if args.action == "add":
            print(service.add_user(args.name, admin=args.admin, expires_in=args.expires_in))
        elif args.action == "token":
            print(service.issue_token(args.name, expires_in=args.expires_in))
        elif args.action == "revoke" and args.token_prefix:
            user, prefix = service.revoke_token(args.token_prefix)
            print(f"revoked token {prefix or '(given whole)'} of {user}")
        elif args.action == "revoke":
            print(f"revoked {service.revoke_user_tokens(args.name)} token(s) of {args.name}")
        elif args.action == "list":
            users = service.list_users()
            print(f"{'name':30} {'admin':5} {'tokens':>6}  last used")
            for u in users:
                print(f"{u.name:30} {'yes' if u.is_admin else 'no':5} {u.live_tokens:>6}  {_when(u.last_used_at)}")
            print(f"{len(users)} user(s); tokens: live ones, not expired")
        elif args.action == "tokens":
            tokens = service.list_tokens(args.name)
            for t in tokens:
                print(f"{t.prefix or '(no prefix)':16} created {_when(t.created_at)}  "
                      f"expires {_when(t.expires_at)}{' (expired)' if t.expired else ''}  "
                      f"last used {_when(t.last_used_at)}")
            print(f"{len(tokens)} token(s) of {args.name}")
        elif args.action == "delete":
            done = service.delete_user(args.name, reassign_to=args.reassign_to)
            print(f"deleted user {done.name}: {done.tokens} token(s) deleted, {done.jobs} async "
                  f"job(s) aborted and left to the reaper, {done.products} product version(s) "
                  f"({done.live_products} live) now owned by {done.products_to}")
    except UserOwnsProductsError as exc:
        print(f"pzvo user: {exc}; hand them to another user with --reassign-to NAME, or delete "
              f"them first (`pzvo products delete`)", file=sys.stderr)
        return 1
    except UserExistsError as exc:
        print(f"pzvo user: {exc}", file=sys.stderr)
        return 1
    except UnknownUserError as exc:
        print(f"pzvo user: no user {exc.name!r}; create it with `pzvo user add`", file=sys.stderr)
        return 1
    except UnknownTokenError as exc:
        print(f"pzvo user: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"pzvo user: {exc}", file=sys.stderr)
        return 2
    return 0


def _registry(settings: Settings) -> ProductRegistry:
    return _services(settings).products


def _operator(settings: Settings, name: str | None) -> User:
    """The user a command acts as: ``--user``, else ``$PZVO_USER``, else the operator account.

    Raises UnknownUserError for a name that is no user: naming one never creates it.
    """
    return _services(settings).operator(name or os.environ.get("PZVO_USER"))


def _no_such_user(command: str, exc: KeyError) -> int:
    from vo_service.auth import OPERATOR  # noqa: PLC0415 - deferred: see _services

    print(f"pzvo {command}: {exc} (from --user or $PZVO_USER); only the operator account "
          f"{OPERATOR!r} is created on demand, others with `pzvo user add`", file=sys.stderr)
    return 1


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    import yaml  # noqa: PLC0415 - deferred: see _services
    from tqdm import tqdm  # noqa: PLC0415 - deferred: see _services

    from ingest.readers import ReadError, open_table  # noqa: PLC0415 - deferred: see _services
    from vo_service.auth import AuthError, UnknownUserError  # noqa: PLC0415 - deferred: see _services
    from vo_service.products import InvalidProductError, RegistrationRequest  # noqa: PLC0415 - deferred: see _services

    try:
        user = _operator(settings, args.user)
    except UnknownUserError as exc:
        return _no_such_user("ingest", exc)
    path = Path(args.file)
    columns: dict[str, dict] = {}
    if args.columns:
        with open(args.columns) as fh:
            columns = yaml.safe_load(fh) or {}
    request = RegistrationRequest(
        name=args.name, product_type=args.type, main_file=path, main_file_name=path.name,
        display_name=args.display_name, release=args.release, official=args.official,
        description=args.description, pz_code=args.pz_code, file_format=args.format,
        columns=columns)
    try:
        total = open_table(path, args.format).num_rows if args.type not in ("trainingresults", "other") else None
    except ReadError:
        total = None
    with tqdm(total=total, unit=" rows", unit_scale=True, disable=None, desc=args.name) as bar:
        try:
            product = _registry(settings).register(request, user, progress=bar.update)
        except InvalidProductError as exc:
            bar.close()
            print("pzvo ingest: " + "\n  ".join([exc.message, *exc.problems[1:]]), file=sys.stderr)
            return 2
        except AuthError as exc:
            bar.close()
            print(f"pzvo ingest: {exc.message} (acting as {user.name})", file=sys.stderr)
            return 1
    print(f"{product.name} v{product.version}: {product.type.label}, "
          + (f"{product.row_count} rows in {product.table_name}" if product.table_name else "stored"))
    return 0


def cmd_products(args: argparse.Namespace, settings: Settings) -> int:
    from vo_service.auth import AuthError, UnknownUserError  # noqa: PLC0415 - deferred: see _services
    from vo_service.products import (  # noqa: PLC0415 - deferred: see _services
        ProductNotFoundError,
        ProductSchema,
        product_document,
    )

    registry = _registry(settings)
    try:
        if args.action == "list":
            products, total = registry.list(product_type=args.type, release=args.release,
                                            search=args.search, page_size=1000)
            for p in products:
                print(f"{p.name:30} v{p.version:<3} {p.product_type:18} {p.release or '-':6} "
                      f"{'official' if p.official else '':8} {p.owner:12} {p.table_name or ''}")
            print(f"{total} product(s)")
        elif args.action == "show":
            doc = product_document(registry.get(args.name, args.version, user=None))
            print(json.dumps(ProductSchema().dump(doc), indent=1))
        elif args.action == "delete":
            product = registry.delete(args.name, args.version, _operator(settings, args.user))
            print(f"deleted {product.name} v{product.version}")
    except ProductNotFoundError as exc:
        print(f"pzvo products: {exc}", file=sys.stderr)
        return 1
    except UnknownUserError as exc:
        return _no_such_user("products", exc)
    except AuthError as exc:
        print(f"pzvo products: {exc.message}", file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """nginx in front of gunicorn, plus the async TAP workers, until Ctrl-C (vo_service/serving.py)."""
    from vo_service.serving import ServiceProcesses  # noqa: PLC0415 - deferred: see _services

    workers = settings.uws_workers if args.async_workers is None else args.async_workers
    try:
        service = ServiceProcesses(settings, args.bind, front=args.front or settings.front,
                                   web_workers=args.workers, web_threads=args.threads,
                                   async_workers=workers)
        service.start()
    except (RuntimeError, ValueError) as exc:
        print(f"pzvo serve: {exc}", file=sys.stderr)
        return 1
    return service.supervise()


def cmd_federate(args: argparse.Namespace, settings: Settings) -> int:
    """A remote query's result uploaded and joined here, or the reverse (vo_service/federation.py)."""
    from tqdm import tqdm  # noqa: PLC0415 - deferred: see _services

    from vo_service.federation import FederationError, TapEndpoint, federate, write_table  # noqa: PLC0415

    def token(variable: str | None, side: str) -> str | None:
        if variable and not os.environ.get(variable):
            raise FederationError(f"the {side} token variable {variable} is not set")
        return os.environ.get(variable) if variable else None

    bar = None if args.no_progress else tqdm(unit="chunk", desc="federate", file=sys.stderr)
    try:
        remote = TapEndpoint(args.remote, token(args.remote_token_env, "remote"), "remote")
        local = TapEndpoint(args.local or "http://127.0.0.1:8000/tap", token(args.local_token_env, "local"), "local")
        source, target = (remote, local) if args.direction == "local" else (local, remote)

        def progress(p: object) -> None:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(rows=getattr(p, "source_rows", 0), joined=getattr(p, "joined_rows", 0))

        table = federate(source, args.remote_query, name=args.name, query=args.query, target=target,
                         chunk_by=args.chunk_by, chunk_rows=args.chunk_rows, maxrec=args.maxrec, progress=progress)
        write_table(table, args.out, args.format)
    except (FederationError, OSError, ValueError) as exc:
        print(f"pzvo federate: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
    if args.out:
        print(f"{len(table)} rows written to {args.out}", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run async jobs (TAP queries and Training Set Maker runs) until SIGTERM/SIGINT
    (see vo_service/uws/_worker.py)."""
    threads = args.threads if args.threads is not None else settings.uws_worker_threads
    from pipeline.tsm.job import KIND as TSM_KIND  # noqa: PLC0415 - the command's own stack
    from pipeline.tsm.job import make_runner  # noqa: PLC0415

    services = _services(settings, pool_size=max(1, threads))
    from pipeline.coop.job import KIND as COOP_KIND  # noqa: PLC0415
    from pipeline.coop.job import make_runner as coop_runner  # noqa: PLC0415

    runners = {TSM_KIND: make_runner(services.products, services.auth.operator,
                                     scheduler=settings.tsm_scheduler or None),
               COOP_KIND: coop_runner(services.products)}
    worker = services.worker(threads=threads, runners=runners)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    worker.start()
    while not stop.wait(1.0):
        pass
    worker.stop()
    return 0


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
    ingest = sub.add_parser("ingest", help="register a product file (tables become ADQL-queryable)")
    ingest.add_argument("file")
    ingest.add_argument("--type", required=True, choices=["speczcat", "trainingset", "validationset",
                                                         "trainingresults", "validationresults",
                                                         "pztable", "objectcatalog", "other"])
    ingest.add_argument("--name", required=True, help="product name (slug: a-z, 0-9, _)")
    ingest.add_argument("--release", help="data release, e.g. DP1")
    ingest.add_argument("--official", action="store_true", help="an official (PZ Coordination Group) product")
    ingest.add_argument("--columns", help="YAML: column -> {role, unit, ucd, description, name}")
    ingest.add_argument("--display-name")
    ingest.add_argument("--description")
    ingest.add_argument("--pz-code", help="photo-z algorithm (PZ tables and results)")
    ingest.add_argument("--format", help="file format when the name does not tell it")
    ingest.add_argument("--user", help="owner, an existing user acting with its own rights "
                        "(default $PZVO_USER, else the operator account 'pzvo', an administrator)")
    ingest.set_defaults(func=cmd_ingest)
    products = sub.add_parser("products", help="list, show or delete registered products")
    products.add_argument("action", choices=["list", "show", "delete"])
    products.add_argument("name", nargs="?")
    products.add_argument("--version", type=int)
    products.add_argument("--type")
    products.add_argument("--release")
    products.add_argument("--search")
    products.add_argument("--user", help="who deletes: an existing user (default $PZVO_USER, else 'pzvo')")
    products.set_defaults(func=cmd_products)
    user = sub.add_parser("user", help="users and their bearer tokens (printed once, stored hashed)")
    user_sub = user.add_subparsers(dest="action", required=True)
    add = user_sub.add_parser("add", help="add a user and print its first token")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="PZ Coordination Group (official products)")
    token = user_sub.add_parser("token", help="print another token for a user")
    token.add_argument("name")
    for p in (add, token):
        p.add_argument("--expires-in", type=_days, metavar="DAYS", help="the token expires after DAYS "
                       "(may be fractional; default: never)")
    revoke = user_sub.add_parser("revoke", help="revoke all of a user's tokens, or one token")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?", help="revoke every token of this user")
    target.add_argument("--token-prefix", metavar="PREFIX",
                        help="revoke one token: its prefix as `pzvo user tokens` shows, or the whole token")
    user_sub.add_parser("list", help="users, admin flag, live tokens, last use")
    tokens = user_sub.add_parser("tokens", help="a user's tokens by prefix, with expiry and last use")
    tokens.add_argument("name")
    delete = user_sub.add_parser("delete", help="delete a user: its tokens, its async jobs; refused "
                                 "while it owns live products unless --reassign-to")
    delete.add_argument("name")
    delete.add_argument("--reassign-to", metavar="USER",
                        help="an existing user who becomes the owner of all its products")
    user.set_defaults(func=cmd_user)
    serve = sub.add_parser("serve", help="serve the web service: nginx in front of gunicorn")
    serve.add_argument("--bind", default="127.0.0.1:8000")
    serve.add_argument("--front", choices=("nginx", "none"), default=None,
                       help="nginx (buffering proxy, the default) or none (gunicorn alone)")
    serve.add_argument("--workers", type=int, default=None,
                       help="gunicorn processes (default: web_workers)")
    serve.add_argument("--threads", type=int, default=None,
                       help="request threads per gunicorn process (default: web_threads)")
    serve.add_argument("--async-workers", type=int, default=None,
                       help="`pzvo worker` processes to run alongside (default: uws_workers)")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run async TAP (UWS) jobs from the queue")
    worker.add_argument("--threads", type=int, default=None,
                        help="jobs run at once (default: uws_worker_threads)")
    worker.set_defaults(func=cmd_worker)
    fed = sub.add_parser("federate", help="join a remote TAP query's result with this service's tables "
                                          "(TAP_UPLOAD), or the reverse (docs/federation.md)")
    fed.add_argument("--remote", required=True, help="the remote TAP service's URL")
    fed.add_argument("--remote-query", required=True,
                     help="ADQL run on the source side (remote; local with --direction remote)")
    fed.add_argument("--as", dest="name", required=True, help="the upload's name: TAP_UPLOAD.<name>")
    fed.add_argument("--query", required=True, help="ADQL run on the target side, joining TAP_UPLOAD.<name>")
    fed.add_argument("--direction", choices=["local", "remote"], default="local",
                     help="local: remote result joined here (default); remote: this service's result "
                          "joined on the remote service")
    fed.add_argument("--local", help="this service's TAP URL (default http://127.0.0.1:8000/tap, as make run)")
    fed.add_argument("--remote-token-env", help="environment variable holding the remote bearer token")
    fed.add_argument("--local-token-env", help="environment variable holding this service's token")
    fed.add_argument("--chunk-by", help="unique key of the source result to page on (e.g. objectId)")
    fed.add_argument("--chunk-rows", type=int, help="rows per chunk (with --chunk-by)")
    fed.add_argument("--maxrec", type=int, help="row limit asked of both services (default: theirs)")
    fed.add_argument("--format", default=None,
                     help="votable, csv, fits, parquet, ecsv (default: from --out's suffix; csv to stdout)")
    fed.add_argument("--out", help="output file (default: CSV on stdout)")
    fed.add_argument("--no-progress", action="store_true")
    fed.set_defaults(func=cmd_federate)
    add_pipeline_commands(sub, _services)  # pzvo pipeline run|evaluate
    add_tsm_commands(sub, _services)  # pzvo tsm run
    add_validation_commands(sub, _services)  # pzvo validation list|show|create|submit|revalidate
    add_export_commands(sub, _services)  # pzvo export felis|parquet|hats
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:  # one line saying what to fix, not a traceback
        print(f"pzvo: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    return args.func(args, settings)


if __name__ == "__main__":
    sys.exit(main())
