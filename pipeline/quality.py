"""Photo-z quality on a held-out validation set: the validation-results product of a run.

Metrics follow the LSST DESC conventions (Schmidt et al. 2020, "Evaluation of probabilistic
photometric redshift estimation approaches for LSST"): with dz = (z_phot - z_true)/(1 + z_true),
``sigma_mad`` = 1.4826 median|dz - median(dz)|, ``bias`` = median(dz), ``outlier_fraction`` =
fraction with |dz| > 0.15; for the PDFs, the PIT histogram (flat for calibrated PDFs; we report
its largest relative deviation from flat and the chi-square test of flatness, statistic and
p-value, over its bins) and the CDE loss (Izbicki & Lee 2017; lower is better).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.pdf import LEVELS, cdf_at, density_at, integral_of_square

OUTLIER_LIMIT = 0.15
PIT_BINS = 10


def json_safe(value: Any) -> Any:
    """JSON has no NaN (and PostgreSQL's jsonb refuses it): an undefined metric becomes null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def point_metrics(z_phot: np.ndarray, z_true: np.ndarray) -> dict[str, float]:
    """n, sigma_MAD, bias and outlier fraction of point estimates."""
    z_phot, z_true = np.asarray(z_phot, float), np.asarray(z_true, float)
    dz = (z_phot - z_true) / (1.0 + z_true)
    med = float(np.median(dz))
    return {"n": int(dz.size), "sigma_mad": float(1.4826 * np.median(np.abs(dz - med))), "bias": med,
            "outlier_fraction": float(np.mean(np.abs(dz) > OUTLIER_LIMIT))}


def pdf_metrics(locs: np.ndarray, z_true: np.ndarray, bins: int = PIT_BINS) -> dict[str, Any]:
    """PIT histogram (counts in ``bins`` equal bins), its flatness, and the CDE loss."""
    pit = cdf_at(locs, z_true)
    counts, _ = np.histogram(pit, bins=bins, range=(0.0, 1.0))
    expected = pit.size / bins
    cde = float(np.mean(integral_of_square(locs)) - 2.0 * np.mean(density_at(locs, z_true)))
    from scipy.stats import chisquare  # noqa: PLC0415 - scipy.stats: 0.6 s; Dask workers load this module, never need it

    # The chi-square test of flatness uses every bin, where the largest deviation sees one: with
    # 10 bins of ~1,000 galaxies Poisson noise alone moves a bin by 3 %.
    chi2 = chisquare(counts) if pit.size else None
    return {"pit_histogram": counts.tolist(), "pit_max_deviation": float(np.max(np.abs(counts / expected - 1.0))),
            "pit_chi2": float(chi2.statistic) if chi2 else float("nan"),
            "pit_chi2_p": float(chi2.pvalue) if chi2 else float("nan"),
            "pit_outlier_rate": float(np.mean((pit < 1e-4) | (pit > 1 - 1e-4))), "cde_loss": cde}


def crps(locs: np.ndarray, z_true: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """Continuous ranked probability score of each quantile PDF: the integral of
    (F(z) - H(z - z_true))^2 dz, F the pipeline's piecewise-linear CDF (0 below the first
    quantile, 1 above the last), H the step at the truth (Gneiting & Raftery 2007; lower is
    better, in units of redshift, and a point estimate's CRPS is its absolute error).

    Exact and vectorized: on each segment F is linear, so the integral of a square is closed
    form; the segment holding the truth is cut there.
    """
    locs = np.asarray(locs, dtype=np.float64)
    z = np.asarray(z_true, dtype=np.float64)[:, None]
    a, b = locs[:, :-1], locs[:, 1:]
    p0, p1 = np.asarray(levels[:-1], np.float64), np.asarray(levels[1:], np.float64)
    cut = np.clip(z, a, b)
    width = b - a
    pc = p0 + (p1 - p0) * np.where(width > 0, (cut - a) / np.where(width > 0, width, 1.0), 0.0)

    def square(length: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return length * (u * u + u * v + v * v) / 3.0  # integral of a linear function's square

    below = square(cut - a, p0, pc)  # F^2 left of the truth
    above = square(b - cut, 1.0 - pc, 1.0 - p1)  # (1 - F)^2 right of it
    outside = np.maximum(locs[:, 0] - z[:, 0], 0.0) + np.maximum(z[:, 0] - locs[:, -1], 0.0)
    return np.asarray((below + above).sum(axis=1) + outside, dtype=np.float64)


def evaluate_columns(columns: dict[str, np.ndarray], z_true: np.ndarray) -> dict[str, Any]:
    """All metrics for one estimator's output columns against the truth."""
    report: dict[str, Any] = point_metrics(columns["z_phot"], z_true)
    report["mode"] = {k: v for k, v in point_metrics(columns["z_mode"], z_true).items() if k != "n"}
    if "z_pdf" in columns:
        report.update(pdf_metrics(columns["z_pdf"], z_true))
    return report


def write_quality_report(out_dir: Path, report: dict[str, Any], columns: dict[str, np.ndarray],
                         z_true: np.ndarray) -> list[Path]:
    """``quality.json`` plus the plots (z_phot against z_true, PIT histogram) as PNG."""
    import matplotlib  # noqa: PLC0415 - matplotlib: 0.7 s, only the quality plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib, after use("Agg")

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "quality.json"]
    paths[0].write_text(json.dumps(report, indent=1))

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.hexbin(z_true, columns["z_phot"], gridsize=80, bins="log", extent=(0, 3, 0, 3), cmap="viridis")
    grid = np.linspace(0, 3, 2)
    ax.plot(grid, grid, "w-", lw=0.8)
    for s in (1, -1):
        ax.plot(grid, grid + s * OUTLIER_LIMIT * (1 + grid), "w--", lw=0.6)
    ax.set(xlabel="true redshift", ylabel="z_phot", xlim=(0, 3), ylim=(0, 3),
           title=f"sigma_MAD {report['sigma_mad']:.4f}, outliers {100 * report['outlier_fraction']:.1f} %")
    fig.tight_layout()
    paths.append(out_dir / "zphot_vs_ztrue.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    if "pit_histogram" in report:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        counts = np.asarray(report["pit_histogram"], float)
        edges = np.linspace(0, 1, counts.size + 1)
        ax.stairs(counts / counts.mean(), edges, fill=True, alpha=0.6)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.axhspan(0.95, 1.05, color="grey", alpha=0.2, label="flat within 5 %")
        ax.set(xlabel="PIT", ylabel="relative frequency", ylim=(0, 1.5),
               title=f"PIT (max deviation {100 * report['pit_max_deviation']:.1f} %), "
                     f"CDE loss {report['cde_loss']:.2f}")
        ax.legend(loc="lower center")
        fig.tight_layout()
        paths.append(out_dir / "pit.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
