"""The Training Set Maker's plots: what a user checks before trusting a training set.

PNG files (matplotlib, Agg), attached to the run's products and shown on their pages:
``nz.png`` (n(z) of each input, the combined catalog, training and validation), ``sky.png``
(positions by input catalog), ``flags.png`` (homogenized flag per survey), ``separation.png``
(separations of the matches) and, with magnitudes, ``mag_z.png`` (i-band magnitude against
redshift).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: At most this many points in a scatter plot (a seeded sample beyond).
MAX_POINTS = 50_000


def _values(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.cast(table.column(name), pa.float64()), np.nan).to_numpy(), dtype=np.float64)


def _sample(n: int) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_POINTS, replace=False))


def make_plots(out_dir: Path, *, inputs: Mapping[str, pa.Table], combined: pa.Table, matched: pa.Table,
               training: pa.Table, validation: pa.Table) -> dict[str, Path]:
    """Write the plots into ``out_dir``; returns name -> path.  ``inputs``: label -> catalog
    with a ``z`` column (the standardized inputs)."""
    import matplotlib  # noqa: PLC0415 - 0.7 s of import, only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after use("Agg")

    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def save(fig: Any, name: str) -> None:
        path = out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths[name] = path

    z_all = [z for z in (_values(t, "z") for t in (*inputs.values(), combined)) if np.isfinite(z).any()]
    z_max = max(float(np.nanmax(z)) for z in z_all) if z_all else 1.0
    bins = np.linspace(0.0, max(z_max, 0.1) * 1.02, 60).tolist()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, table in inputs.items():
        ax.hist(_values(table, "z"), bins=bins, histtype="step", label=f"{label} ({table.num_rows:,})")
    for label, table, style in (("combined", combined, "-"), ("training", training, "--"),
                                ("validation", validation, ":")):
        ax.hist(_values(table, "z"), bins=bins, histtype="step", linewidth=2, linestyle=style,
                label=f"{label} ({table.num_rows:,})")
    ax.set(xlabel="redshift", ylabel="galaxies per bin", title="n(z)")
    ax.legend(fontsize=8)
    save(fig, "nz")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    sources = np.asarray(combined.column("source").to_pylist(), dtype=object)
    ra, dec = _values(combined, "ra"), _values(combined, "dec")
    rows = _sample(len(ra))
    for label in dict.fromkeys(sources[rows]):
        mine = rows[sources[rows] == label]
        ax.scatter(ra[mine], dec[mine], s=2, alpha=0.5, label=str(label))
    ax.set(xlabel="RA (deg)", ylabel="Dec (deg)", title="combined catalog on the sky")
    if len(ra) and np.nanmax(ra) - np.nanmin(ra) < 360:
        ax.invert_xaxis()
    ax.legend(fontsize=8, markerscale=4)
    save(fig, "sky")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    surveys = np.asarray(pc.fill_null(combined.column("survey"), "").to_pylist(), dtype=object)
    flags = np.asarray(combined.column("z_flag_homogenized").to_numpy(zero_copy_only=False), dtype=np.int64)
    names = sorted(set(surveys.tolist()))
    width = 0.8 / max(len(names), 1)
    for k, name in enumerate(names):
        counts = np.bincount(flags[surveys == name].clip(0, 6), minlength=7)
        ax.bar(np.arange(7) + (k - (len(names) - 1) / 2) * width, counts, width=width, label=name or "(none)")
    ax.set(xlabel="homogenized flag (0-6)", ylabel="rows", title="quality flags by survey", xticks=range(7))
    ax.legend(fontsize=8)
    save(fig, "flags")

    if "separation_arcsec" in matched.column_names:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        ax.hist(_values(matched, "separation_arcsec"), bins=40)
        ax.set(xlabel="separation (arcsec)", ylabel="matches", title=f"crossmatch separations ({matched.num_rows:,})")
        save(fig, "separation")

    if "mag_i" in matched.column_names:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        rows = _sample(matched.num_rows)
        ax.scatter(_values(matched, "z")[rows], _values(matched, "mag_i")[rows], s=2, alpha=0.4)
        ax.set(xlabel="spectroscopic redshift", ylabel="i (AB mag)", title="magnitude against redshift")
        ax.invert_yaxis()
        save(fig, "mag_z")
    return paths
