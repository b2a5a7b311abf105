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
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def is_hats_catalog(root: Path) -> bool:
    """A HATS catalog root: a properties file and the ``dataset`` directory of pixel files."""
    root = Path(root)
    return root.is_dir() and (root / "dataset").is_dir() and any(
        (root / name).is_file() for name in ("hats.properties", "properties"))


def write_hats_metadata(objects: Path, data_dir: Path, *, name: str,
                        extra: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Make ``data_dir`` (the run's output, laid out like the HATS catalog ``objects``) a HATS
    catalog: its partition list, Parquet metadata and properties.  Returns what was written,
    or None when ``hats`` is not installed."""
    try:
        import hats
        from hats.catalog import PartitionInfo, TableProperties
        from hats.io.parquet_metadata import write_parquet_metadata
    except ImportError:
        log.warning("the object catalog is HATS but the output is a plain Parquet dataset: "
                    "install the 'hats' package (pip install 'pzvo[hats]') for a HATS output")
        return None
    source = hats.read_hats(objects)
    pixels = source.get_healpix_pixels()
    missing = [p for p in pixels if not (data_dir / _pixel_path(p.order, p.pixel)).is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} HEALPix pixels of {objects} have no output file, e.g. {missing[0]}")
    rows = write_parquet_metadata(data_dir)
    PartitionInfo.from_healpix(pixels).write_to_file(data_dir / "partition_info.csv")
    inherited = {key: getattr(source.catalog_info, key) for key in ("moc_sky_fraction", "hats_max_rows")
                 if getattr(source.catalog_info, key, None) is not None}  # same pixels, same rows
    properties = TableProperties(
        catalog_name=name, catalog_type="object", total_rows=rows, ra_column="ra", dec_column="dec",
        hats_order=max(p.order for p in pixels), **inherited,
        **TableProperties.new_provenance_dict(data_dir, builder=f"pzvo {_version()}"),
        pzvo_object_catalog=str(objects), **(extra or {}))
    properties.to_properties_file(data_dir)
    log.info("HATS catalog written", extra={"path": str(data_dir), "pixels": len(pixels), "rows": rows})
    return {"path": str(data_dir), "pixels": len(pixels), "rows": rows, "primary_catalog": str(objects)}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pzvo")
    except PackageNotFoundError:
        return "unknown"


def _pixel_path(order: int, pixel: int) -> str:
    return f"dataset/Norder={order}/Dir={pixel // 10_000 * 10_000}/Npix={pixel}.parquet"
