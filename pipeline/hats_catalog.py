"""The PZ table as a HATS catalog when the Object catalog is one.

HATS (IVOA Note "HATS"; LINCC's ``hats`` and ``lsdb`` packages) partitions a catalog by HEALPix
pixel: ``dataset/Norder=k/Dir=d/Npix=n.parquet`` plus ``hats.properties``,
``partition_info.csv`` and the Parquet ``_common_metadata``/``_metadata`` files.  The pipeline
writes one output file per input file at the same relative path, so when the input is a HATS
catalog the output's data files already sit in the same pixels; this module adds the catalog
metadata, and the PZ table opens with ``lsdb.read_hats`` and joins the Object catalog pixel by
pixel (no shuffle), as Rubin's HATS catalogs are used.

Needs the ``hats`` package (the ``[hats]`` extra); without it the output stays a plain Parquet
dataset and the run says so in its log.
"""
from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class HatsCatalogError(RuntimeError):
    """The output cannot be made a HATS catalog (files missing, or not only the run's)."""


def is_hats_catalog(root: Path) -> bool:
    """A HATS catalog root: a properties file and the ``dataset`` directory of pixel files."""
    root = Path(root)
    return root.is_dir() and (root / "dataset").is_dir() and any(
        (root / name).is_file() for name in ("hats.properties", "properties"))


#: The catalog-level files of a HATS catalog that this module writes.
METADATA_FILES = ("hats.properties", "properties", "partition_info.csv", "dataset/_metadata",
                  "dataset/_common_metadata")


def remove_hats_metadata(data_dir: Path) -> None:
    """Drop an earlier run's catalog files before partitions are rewritten: until the run ends,
    the directory must not look like a valid catalog of files that have since changed."""
    for name in METADATA_FILES:
        (Path(data_dir) / name).unlink(missing_ok=True)


def write_hats_metadata(objects: Path, data_dir: Path, *, name: str, outputs: list[Path], rows: int,
                        extra: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Make ``data_dir`` (the run's output, laid out like the HATS catalog ``objects``) a HATS
    catalog: its partition list, Parquet metadata and properties.

    ``outputs`` are the run's files and ``rows`` their rows: the catalog must hold exactly those
    (any other file is an error; a killed run's partial ``*.tmp-*`` files were removed when
    this run started, ``pipeline.run.remove_partial_outputs``).
    Returns what was written, or None when ``hats`` is not installed.
    """
    try:
        import hats  # noqa: PLC0415 - hats: optional (pzvo[hats]), 2 s to import
        from hats.catalog import PartitionInfo, TableProperties  # noqa: PLC0415 - hats
        from hats.io.parquet_metadata import write_parquet_metadata  # noqa: PLC0415 - hats
    except ImportError:
        log.warning("the object catalog is HATS but the output is a plain Parquet dataset: "
                    "install the 'hats' package (pip install 'pzvo[hats]') for a HATS output")
        return None
    data_dir = Path(data_dir)
    source = hats.read_hats(objects)
    pixels = source.get_healpix_pixels()
    expected = {Path(p).resolve() for p in outputs}
    present = {p.resolve() for p in (data_dir / "dataset").rglob("*") if p.is_file() and not p.name.startswith("_")}
    if present != expected:
        strays, missing = sorted(present - expected), sorted(expected - present)
        raise HatsCatalogError(f"{data_dir} is not only this run's output: {len(strays)} other files "
                               f"(e.g. {strays[:1]}), {len(missing)} missing (e.g. {missing[:1]})")
    written = write_parquet_metadata(data_dir)
    if written != rows:
        raise HatsCatalogError(f"HATS metadata counts {written} rows, the run wrote {rows}")
    PartitionInfo.from_healpix(pixels).write_to_file(data_dir / "partition_info.csv")
    info = source.catalog_info
    inherited = {key: getattr(info, key) for key in ("moc_sky_fraction", "hats_max_rows", "npix_suffix")
                 if getattr(info, key, None) is not None}  # same pixels, same rows, same file layout
    properties = TableProperties(
        catalog_name=name, catalog_type="object", total_rows=rows, ra_column="ra", dec_column="dec",
        hats_order=max(p.order for p in pixels), **inherited,
        **TableProperties.new_provenance_dict(data_dir, builder=f"pzvo {_version()}"),
        pzvo_object_catalog=str(objects), **(extra or {}))
    properties.to_properties_file(data_dir)
    log.info("HATS catalog written", extra={"path": str(data_dir), "pixels": len(pixels), "rows": rows})
    return {"path": str(data_dir), "pixels": len(pixels), "rows": rows, "object_catalog": str(objects)}


def _version() -> str:
    try:
        return version("pzvo")
    except PackageNotFoundError:
        return "unknown"
