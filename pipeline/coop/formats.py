"""The Cooperative's result format, and reading a participant's file into the standard form.

A result file is a table (Parquet, CSV, FITS) or a qp ensemble (HDF5), one row per object of the
validation set: the object id, a point estimate and optionally a PDF in one of qp's forms
(docs/coop.md, "Result format", states the conventions below for participants):

- id: the column the caller names (the validation set's id column), else ``id``, else
  ``objectId`` (the RSP's name of the Object key), else ``object_id`` (names match whatever their
  case: FITS writers often upper-case them);
- point estimate: ``z_phot``, else ``z``;
- PDF, at most one form:

  - quantiles: ``z_q_<level>`` columns (``z_q_0.025`` ... ``z_q_0.975``, the level written as a
    decimal number), or the standard form's ``q_<level x 1000, 4 digits>`` (``q_0000`` ...
    ``q_1000``), or an array column ``quantiles`` with the levels in the file's metadata
    (``quantile_levels``, a JSON list) or the ``levels`` argument;
  - histogram: ``pdf_<i>`` columns or an array column ``pdf``, densities on the grid given in the
    metadata (``grid``) or the ``grid`` argument: a grid one longer than the values holds bin
    edges (qp ``hist``), one as long holds the points the densities are given at (qp ``interp``);
  - Gaussian mixture: array columns ``means``, ``stds``, ``weights`` (or ``mean_<i>``,
    ``std_<i>``, ``weight_<i>``);
  - samples: an array column ``samples`` (or ``sample_<i>``);

- HDF5: any file ``qp.read`` takes; ids and the point estimate come from its ancillary table
  (``id`` / ``objectId`` / ``object_id``; ``z_phot``, ``z``, ``zmode``, ``z_mode``, ``z_median``) or, when it
  has none (RAIL writes only ``zmode``), from a ``companion`` table file in the same row order;
  with no point estimate anywhere the PDF's median is used.

Metadata: Parquet key-value metadata, or the FITS header of the table (keywords ``QLEVELS`` and
``ZGRID``, JSON lists; the long-string convention carries them).  Every accepted PDF becomes
quantile locations at :data:`pipeline.pdf.LEVELS`, float32, as the pipeline stores its own:
quantiles at those levels are kept as given; quantiles at other levels spanning 0 to 1 are
re-read on the pipeline's piecewise-linear CDF (:func:`pipeline.pdf.quantiles_from_knots`);
samples give their empirical quantiles; everything else goes through qp
(:func:`pipeline.pdf.from_qp`), and locations qp puts below z = 0 (a Gaussian's tail) are
clipped to 0.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.table import Table

from ingest.readers import ReadError, detect_format, open_table
from pipeline.coop._models import Submission, SubmissionError
from pipeline.coop.checks import histogram_problems, mixture_problems, quantile_problems, sample_problems
from pipeline.pdf import LEVELS, from_qp, quantiles_from_knots

__all__ = ["FILE_FORMATS", "FORMS", "ID_COLUMNS", "POINT_COLUMNS", "Submission", "SubmissionError",
           "read_submission", "standard_locs"]

#: The PDF forms of a submission (``qp``: an HDF5 file of any qp parameterization).
FORMS = ("none", "quantiles", "histogram", "mixture", "samples", "qp")
FILE_FORMATS = ("parquet", "csv", "fits", "hdf5")
ID_COLUMNS = ("id", "objectId", "object_id")
POINT_COLUMNS = ("z_phot", "z")
QP_POINT_COLUMNS = ("z_phot", "z", "zmode", "z_mode", "z_median", "zmedian")
LEVELS_KEYS = ("quantile_levels", "qlevels")
GRID_KEYS = ("grid", "zgrid")
_Z_Q = re.compile(r"^z_q_([01](?:\.\d+)?|\.\d+)$")
_Q_STD = re.compile(r"^q_(\d{4})$")
_INDEXED = re.compile(r"^(pdf|mean|std|weight|sample)_(\d+)$")
_ARRAYS = {"quantiles": "quantiles", "pdf": "histogram", "means": "mixture", "samples": "samples"}


def read_submission(path: str | Path, *, id_column: str | None = None, grid: Sequence[float] | None = None,
                    levels: Sequence[float] | None = None, companion: str | Path | None = None,
                    fmt: str | None = None) -> Submission:
    """Read a result file into the standard form; problems of the PDF's own form go in
    ``problems``.  Raises :class:`SubmissionError` when the file cannot be read at all or has no
    ids (nothing else can be checked then)."""
    path = Path(path)
    try:
        file_format = detect_format(path, fmt)
    except ReadError as exc:
        raise SubmissionError([str(exc)]) from exc
    expected = None if grid is None else np.asarray(grid, dtype=np.float64)
    if file_format == "hdf5":
        return _read_qp(path, id_column, companion)
    if file_format not in FILE_FORMATS:
        raise SubmissionError([f"{path.name}: a {file_format} file; results are Parquet, CSV, FITS or qp HDF5"])
    columns, meta = _read_table(path, file_format)
    sub = _from_columns(columns, meta, id_column, expected,
                        None if levels is None else np.asarray(levels, dtype=np.float64))
    sub.source["format"] = file_format
    return sub


# -- tables ------------------------------------------------------------------------------------


def _read_table(path: Path, file_format: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Columns as numpy arrays (array columns 2-D) and the file's metadata."""
    try:
        if file_format == "fits":
            return _read_fits(path)
        source = open_table(path, file_format)
        table = pa.Table.from_batches(list(source.batches()), schema=source.schema)
        meta: dict[str, str] = {}
        if file_format == "parquet":
            raw = pq.read_schema(path).metadata or {}
            meta = {k.decode(errors="replace").lower(): v.decode(errors="replace") for k, v in raw.items()}
        return {name: _column_array(table.column(name), name) for name in table.column_names}, meta
    except ReadError as exc:
        raise SubmissionError([str(exc)]) from exc


def _read_fits(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """FITS through the product reader; vector columns (which it refuses) through astropy."""
    try:
        source = open_table(path, "fits")
        table = pa.Table.from_batches(list(source.batches()), schema=source.schema)
        columns = {name: _column_array(table.column(name), name) for name in table.column_names}
    except ReadError as first:
        try:
            data = Table.read(path, format="fits", hdu=1)
        except (OSError, ValueError, TypeError) as exc:
            raise first from exc
        columns = {name: np.asarray(data[name]) for name in data.colnames}
    try:
        header = fits.getheader(path, 1)
    except (OSError, IndexError, KeyError):
        header = {}
    return columns, {str(k).lower(): str(v) for k, v in header.items()}


def _column_array(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A 1-D array, or 2-D for a list column whose lists all have one length."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or \
            pa.types.is_fixed_size_list(column.type):
        array = column.combine_chunks()
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        if array.null_count or (lengths.size and np.any(lengths != lengths[0])):
            raise SubmissionError([f"array column {name!r}: every row must hold the same number of values"])
        width = int(lengths[0]) if lengths.size else 0
        flat = pc.list_flatten(array).to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=np.float64).reshape(len(array), width)
    return np.asarray(column.to_numpy())


def _from_columns(columns: dict[str, np.ndarray], meta: Mapping[str, str], id_column: str | None,
                  expected_grid: np.ndarray | None, levels: np.ndarray | None) -> Submission:
    by_lower = {name.lower(): name for name in columns}
    wanted = [id_column] if id_column else list(ID_COLUMNS)
    id_name = next((by_lower[w.lower()] for w in wanted if w.lower() in by_lower), None)
    if id_name is None:
        raise SubmissionError([f"no id column: name it {' or '.join(repr(w) for w in wanted)} "
                               f"(the file has {', '.join(list(columns)[:20])})"])
    ids = _ids(columns[id_name], id_name)
    rows = ids.size
    problems: list[str] = []
    source: dict[str, Any] = {"id_column": id_name}
    point_name = next((by_lower[p] for p in POINT_COLUMNS if p in by_lower), None)
    source["point_column"] = point_name
    if point_name is None:
        problems.append("no point estimate: give a column z_phot (or z)")
        z_phot = np.full(rows, np.nan)
    else:
        z_phot = _floats(columns[point_name])
    forms = _pdf_columns(by_lower)
    if len(forms) > 1:
        problems.append(f"the file holds PDFs in several forms ({', '.join(sorted(forms))}): give one")
        return Submission(ids, z_phot, None, "none", rows, problems, source)
    if not forms:
        return Submission(ids, z_phot, None, "none", rows, problems, source)
    form, names = next(iter(forms.items()))
    source["pdf_columns"] = names[:3] + (["..."] if len(names) > 3 else [])
    data = {key: _matrix(columns, by_lower, key, names) for key in _keys(form)}
    locs, found = _convert(form, data, names, meta, ids, expected_grid, levels, source)
    problems += found
    return Submission(ids, z_phot, None if found else locs, form, rows, problems, source)


def _ids(values: np.ndarray, name: str) -> np.ndarray:
    """Integer ids (the validation set's are 64-bit integers); refuses anything else by name."""
    if values.ndim != 1:
        raise SubmissionError([f"id column {name!r} holds arrays, not one id per row"])
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    try:
        return np.asarray([int(v) for v in values], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise SubmissionError([f"id column {name!r}: ids must be integers without gaps (no empty or "
                               "non-numeric values)"]) from None


def _floats(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _pdf_columns(by_lower: Mapping[str, str]) -> dict[str, list[str]]:
    """The PDF forms whose columns the file has: form -> the (lower-case) column names."""
    forms: dict[str, list[str]] = {}
    quantile_cols = [n for n in by_lower if _Z_Q.match(n) or _Q_STD.match(n)]
    if quantile_cols:
        forms["quantiles"] = quantile_cols
    for array, form in _ARRAYS.items():
        if array in by_lower:
            forms.setdefault(form, []).append(array)
    indexed: dict[str, list[str]] = {}
    for name in by_lower:
        match = _INDEXED.match(name)
        if match:
            indexed.setdefault(match.group(1), []).append(name)
    for prefix, form in (("pdf", "histogram"), ("mean", "mixture"), ("sample", "samples")):
        if prefix in indexed:
            forms.setdefault(form, []).extend(indexed[prefix])
    if "mixture" in forms:
        forms["mixture"] = sorted(set(forms["mixture"]) | {n for n in by_lower if n in ("stds", "weights")}
                                  | set(indexed.get("std", [])) | set(indexed.get("weight", [])))
    return forms


def _keys(form: str) -> list[str]:
    return {"quantiles": ["quantiles"], "histogram": ["pdf"], "samples": ["sample"],
            "mixture": ["mean", "std", "weight"]}[form]


def _matrix(columns: dict[str, np.ndarray], by_lower: Mapping[str, str], key: str, names: list[str]) -> np.ndarray:
    """The (rows, k) values of one PDF quantity, from its array column or its numbered columns."""
    array = {"quantiles": "quantiles", "pdf": "pdf", "sample": "samples", "mean": "means", "std": "stds",
             "weight": "weights"}[key]
    if array in by_lower and columns[by_lower[array]].ndim == 2:
        return np.asarray(columns[by_lower[array]], dtype=np.float64)
    if key == "quantiles":
        chosen = [n for n in names if _Z_Q.match(n) or _Q_STD.match(n)]
        chosen.sort(key=_level_of)
    else:
        chosen = sorted((n for n in by_lower if (m := _INDEXED.match(n)) and m.group(1) == key),
                        key=lambda n: int(n.rsplit("_", 1)[1]))
    if not chosen:
        raise SubmissionError([f"the {key} values of the PDF are missing: give an array column {array!r} "
                               f"or columns {key}_0, {key}_1, ..."])
    return np.column_stack([_floats(columns[by_lower[n]]) for n in chosen])


def _level_of(name: str) -> float:
    standard = _Q_STD.match(name)
    if standard:
        return int(standard.group(1)) / 1000.0
    match = _Z_Q.match(name)
    assert match is not None
    return float(match.group(1))


def _meta_list(meta: Mapping[str, str], keys: tuple[str, ...], what: str) -> tuple[np.ndarray | None, list[str]]:
    for key in keys:
        if key in meta:
            try:
                values = np.asarray(json.loads(meta[key]), dtype=np.float64)
            except (ValueError, TypeError):
                return None, [f"the file's {key!r} metadata is not a JSON list of numbers ({what})"]
            if values.ndim != 1:
                return None, [f"the file's {key!r} metadata is not a flat list of numbers ({what})"]
            return values, []
    return None, []


def _convert(form: str, data: dict[str, np.ndarray], names: list[str], meta: Mapping[str, str], ids: np.ndarray,
             expected_grid: np.ndarray | None, levels: np.ndarray | None,
             source: dict[str, Any]) -> tuple[np.ndarray | None, list[str]]:
    """Check a PDF in its own form, then convert it: (locs or None, problems)."""
    if form == "quantiles":
        locs = data["quantiles"]
        if "quantiles" in names:
            found_levels, problems = _meta_list(meta, LEVELS_KEYS, "the quantile levels")
            if levels is None:
                levels = found_levels
            if levels is None:
                return None, problems + ["an array column 'quantiles' needs its levels: the file's "
                                         "'quantile_levels' metadata (a JSON list) or z_q_<level> columns"]
        else:
            levels = np.asarray(sorted(_level_of(n) for n in names), dtype=np.float64)
        assert levels is not None
        source["levels"] = levels.tolist()
        if levels.size != locs.shape[1]:
            return None, [f"{locs.shape[1]} quantiles per object for {levels.size} levels"]
        problems = quantile_problems(levels, locs, ids)
        return (None, problems) if problems else (standard_locs_from_quantiles(levels, locs), [])
    if form == "histogram":
        values = data["pdf"]
        declared, problems = _meta_list(meta, GRID_KEYS, "the histogram grid")
        grid = declared if declared is not None else expected_grid
        if grid is None:
            return None, problems + ["a histogram needs its grid: the file's 'grid' metadata (a JSON list of "
                                     "bin edges or points) or the challenge's grid"]
        source["grid"] = {"size": int(grid.size), "start": float(grid[0]), "stop": float(grid[-1])}
        problems += histogram_problems(values, grid, ids, expected_grid if declared is not None else None)
        return (None, problems) if problems else (_via_qp(_histogram_ensemble(values, grid)), [])
    if form == "mixture":
        means, stds, weights = data["mean"], data["std"], data["weight"]
        problems = mixture_problems(means, stds, weights, ids)
        if problems:
            return None, problems
        import qp  # noqa: PLC0415 - qp: 0.1 s, only for PDFs given in one of its other forms

        return _via_qp(qp.Ensemble(qp.mixmod, data={"means": means, "stds": stds, "weights": weights})), []
    samples = data["sample"]
    problems = sample_problems(samples, ids)
    if problems:
        return None, problems
    # The empirical quantiles are exact for the samples given; qp's spline fit would smooth them.
    return np.quantile(samples, LEVELS, axis=1).T.astype(np.float32), []


def standard_locs_from_quantiles(levels: np.ndarray, locs: np.ndarray) -> np.ndarray:
    """Quantiles at any levels as quantiles at :data:`LEVELS` (see the module docstring)."""
    if levels.shape == LEVELS.shape and np.allclose(levels, LEVELS, rtol=0, atol=1e-9):
        return np.asarray(locs, dtype=np.float32)
    if levels[0] == 0.0 and levels[-1] == 1.0:
        return quantiles_from_knots(np.asarray(locs, np.float64), levels, LEVELS).astype(np.float32)
    import qp  # noqa: PLC0415 - qp: 0.1 s, only to extrapolate quantiles that stop short of 0 and 1

    return _via_qp(qp.Ensemble(qp.quant, data={"quants": levels, "locs": np.asarray(locs, np.float64)}))


def _histogram_ensemble(values: np.ndarray, grid: np.ndarray) -> Any:
    import qp  # noqa: PLC0415 - qp: 0.1 s, only for PDFs given in one of its other forms

    if grid.size == values.shape[1] + 1:
        return qp.Ensemble(qp.hist, data={"bins": grid, "pdfs": values})
    return qp.Ensemble(qp.interp, data={"xvals": grid, "yvals": values})


def _via_qp(ensemble: Any) -> np.ndarray:
    """Quantile locs of a qp ensemble at LEVELS, clipped to z >= 0, float32."""
    locs = np.maximum(from_qp(ensemble, LEVELS), 0.0)
    return np.maximum.accumulate(locs, axis=1).astype(np.float32)


def standard_locs(ensemble: Any) -> np.ndarray:
    """Any qp ensemble's PDFs in the standard form (quantile ensembles at LEVELS kept as they are)."""
    import qp  # noqa: PLC0415 - qp: 0.1 s, only for qp ensembles

    if isinstance(ensemble.gen_obj, qp.quant_gen):
        quants = np.asarray(ensemble.dist.quants, np.float64)
        return standard_locs_from_quantiles(quants, np.asarray(ensemble.dist.locs, np.float64))
    return _via_qp(ensemble)


# -- qp HDF5 -----------------------------------------------------------------------------------


def _read_qp(path: Path, id_column: str | None, companion: str | Path | None) -> Submission:
    import qp  # noqa: PLC0415 - qp: 0.1 s, only for HDF5 submissions

    try:
        if not qp.is_qp_file(str(path)):
            raise SubmissionError([f"{path.name}: not a qp file (an HDF5 submission is a qp ensemble written "
                                   "by Ensemble.write_to)"])
        ensemble = qp.read(str(path))
    except SubmissionError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise SubmissionError([f"{path.name}: qp cannot read it ({type(exc).__name__}: {exc})"]) from exc
    rows = int(ensemble.npdf)
    ancil = {str(k).lower(): np.asarray(v) for k, v in (ensemble.ancil or {}).items()}
    extra: dict[str, np.ndarray] = {}
    if companion is not None:
        columns, _ = _read_table(Path(companion), detect_format(Path(companion)))
        extra = {k.lower(): v for k, v in columns.items()}
    problems: list[str] = []
    wanted = [id_column.lower()] if id_column else [w.lower() for w in ID_COLUMNS]
    id_values = next((src[w] for src in (ancil, extra) for w in wanted if w in src), None)
    if id_values is None:
        raise SubmissionError([f"{path.name}: no ids: add an ancillary column "
                               f"{' or '.join(repr(w) for w in wanted)} (ensemble.set_ancil) or give a "
                               "companion table with the ids in the ensemble's row order"])
    ids = _ids(id_values, "id")
    if ids.size != rows:
        raise SubmissionError([f"{path.name}: {ids.size:,} ids for {rows:,} PDFs (the companion must have one "
                               "row per PDF, in the same order)"])
    point = next(((src[p], p) for src in (ancil, extra) for p in QP_POINT_COLUMNS if p in src), None)
    source: dict[str, Any] = {"format": "hdf5", "qp_class": type(ensemble.gen_obj).__name__.removesuffix("_gen"),
                              "id_column": "id", "point_column": None if point is None else point[1]}
    try:
        locs = standard_locs(ensemble)
    except (ValueError, TypeError, IndexError, FloatingPointError) as exc:
        return Submission(ids, np.full(rows, np.nan), None, "qp", rows,
                          [f"{path.name}: qp cannot compute the PDFs' quantiles ({exc})"], source)
    if point is None:
        # No point estimate given: the median of the PDF stands in for it (documented).
        z_phot = locs[:, int(np.flatnonzero(LEVELS == 0.5)[0])].astype(np.float64)
        source["point_column"] = "median of the PDF"
    else:
        z_phot = _floats(point[0]).reshape(-1)
        if z_phot.size != rows:
            problems.append(f"{z_phot.size:,} point estimates for {rows:,} PDFs")
            z_phot = np.full(rows, np.nan)
    return Submission(ids, z_phot, locs, "qp", rows, problems, source)
