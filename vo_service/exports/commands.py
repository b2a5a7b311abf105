"""What ``pzvo export`` runs (:mod:`vo_service.exports.cli` parses the arguments)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

from vo_service.core.settings import Settings
from vo_service.exports.data import export_hats, export_parquet
from vo_service.exports.felis import felis_document, validate_felis, write_felis
from vo_service.exports.tables import ExportError, find_published
from vo_service.services import Services


def run_export(args: argparse.Namespace, settings: Settings, services: Services) -> int:
    """Run one export; ExportError (a ValueError) for what the user must fix."""
    table = find_published(services, args.table)
    key = settings.object_key_column
    if args.export_command == "felis":
        if str(args.out) == "-":
            document = felis_document(table, object_key=key)
            validate_felis(document)
            sys.stdout.write(yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True))
            return 0
        out = args.out or Path(f"{table.name}.felis.yaml")
        write_felis(table, out, object_key=key)
        print(f"{table.name}: felis schema written to {out}")
        return 0
    if args.rows_per_file < 1:
        raise ExportError("--rows-per-file must be at least 1")
    bar = None if args.no_progress else tqdm(unit="row", unit_scale=True, desc=table.name, file=sys.stderr)
    progress = bar.update if bar is not None else None
    try:
        if args.export_command == "parquet":
            done = export_parquet(services, table, args.dir, rows_per_file=args.rows_per_file, progress=progress)
            print(f"{table.name}: {done.rows} rows in {len(done.files)} Parquet files in {args.dir}")
            return 0
        made = export_hats(services, table, args.dir, workers=args.workers, rows_per_file=args.rows_per_file,
                           pixel_threshold=args.pixel_threshold, highest_order=args.highest_order,
                           object_key=key, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"{table.name}: HATS catalog of {made['rows']} rows in {made['path']}")
    return 0
