"""Reading and checking Cooperative submissions: every file format, every PDF form, every refusal."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import qp
from astropy.io import fits
from astropy.table import Table
from scipy.stats import norm

from pipeline.coop.checks import SubmissionError, check_submission
from pipeline.coop.formats import read_submission
from pipeline.pdf import LEVELS

N = 600
RNG = np.random.default_rng(18)
IDS = RNG.permutation(np.arange(10_000, 10_000 + N)).astype(np.int64)
MU = RNG.uniform(0.2, 2.0, N)
SIGMA = 0.05 * (1 + MU)
INNER = slice(1, -1)  # levels 0 and 1 are the support's ends, which each form defines its own way
GAUSS = MU[:, None] + SIGMA[:, None] * norm.ppf(LEVELS[INNER])[None, :]
GRID = np.linspace(0.0, 4.0, 801)


def gaussian_quantiles(levels: np.ndarray) -> np.ndarray:
    # a Gaussian truncated at z = 0 (its far tail below 0 is not a redshift)
    return np.maximum(MU[:, None] + SIGMA[:, None] * norm.ppf(np.clip(levels, 1e-6, 1 - 1e-6))[None, :], 0.0)


def write_parquet(path, columns, meta=None):
    table = pa.table(columns)
    if meta:
        table = table.replace_schema_metadata({k: json.dumps(v) for k, v in meta.items()})
    pq.write_table(table, path)
    return path


def quantile_columns(levels=LEVELS, prefix="z_q_"):
    locs = gaussian_quantiles(levels)
    return {f"{prefix}{level:g}": locs[:, i] for i, level in enumerate(levels)}


def base(ids=IDS, z=MU):
    return {"id": np.asarray(ids, np.int64), "z_phot": np.asarray(z, np.float64)}


def assert_gaussian(sub, tol):
    assert sub.locs is not None and sub.locs.dtype == np.float32 and sub.locs.shape == (N, LEVELS.size)
    assert np.all(np.diff(sub.locs, axis=1) >= 0)
    error = np.abs(sub.locs[:, INNER] - GAUSS) / SIGMA[:, None]
    assert error.max() < tol, error.max()


# -- accepted forms and formats -------------------------------------------------------------------


def test_quantile_columns_at_the_standard_levels_are_kept(tmp_path):
    sub = read_submission(write_parquet(tmp_path / "r.parquet", {**base(), **quantile_columns()}))
    assert sub.form == "quantiles" and sub.rows == N and not sub.problems
    assert sub.ids.dtype == np.int64 and np.array_equal(sub.ids, IDS)
    assert_gaussian(sub, 1e-4)
    check_submission(sub, IDS)


def test_quantiles_at_other_levels_and_the_standard_form_columns(tmp_path):
    levels = np.array([0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 1.0])
    sub = read_submission(write_parquet(tmp_path / "a.parquet", {**base(), **quantile_columns(levels)}))
    assert_gaussian(sub, 0.05)
    # The standard form itself (q_<level x 1000>) is accepted back.
    standard = {f"q_{round(level * 1000):04d}": gaussian_quantiles(LEVELS)[:, i] for i, level in enumerate(LEVELS)}
    assert_gaussian(read_submission(write_parquet(tmp_path / "s.parquet", {**base(), **standard})), 1e-4)
    # Levels that stop short of 0 and 1: qp extrapolates the ends.
    short = np.array([0.025, 0.05, 0.16, 0.25, 0.5, 0.75, 0.84, 0.95, 0.975])
    sub = read_submission(write_parquet(tmp_path / "b.parquet", {**base(), **quantile_columns(short)}))
    assert sub.locs is not None and np.abs(sub.locs[:, 8] - MU).max() < 0.01 * SIGMA.max() + 1e-6


def test_quantile_array_column_with_levels_in_the_metadata(tmp_path):
    locs = gaussian_quantiles(LEVELS)
    path = write_parquet(tmp_path / "r.parquet", {**base(), "quantiles": list(locs)},
                         meta={"quantile_levels": LEVELS.tolist()})
    sub = read_submission(path)
    assert sub.form == "quantiles" and sub.source["levels"] == LEVELS.tolist()
    assert_gaussian(sub, 1e-4)
    no_levels = write_parquet(tmp_path / "n.parquet", {**base(), "quantiles": list(locs)})
    assert any("needs its levels" in p for p in read_submission(no_levels).problems)
    assert_gaussian(read_submission(no_levels, levels=LEVELS), 1e-4)


@pytest.mark.parametrize("edges", [True, False])
def test_histogram_with_the_grid_in_the_metadata_or_given(tmp_path, edges):
    if edges:  # densities in bins (qp hist)
        centres = 0.5 * (GRID[1:] + GRID[:-1])
        values = norm.cdf((GRID[None, 1:] - MU[:, None]) / SIGMA[:, None]) - \
            norm.cdf((GRID[None, :-1] - MU[:, None]) / SIGMA[:, None])
        values = values / np.diff(GRID)[None, :]
        assert centres.size == values.shape[1]
    else:  # densities at points (qp interp)
        values = norm.pdf((GRID[None, :] - MU[:, None]) / SIGMA[:, None]) / SIGMA[:, None]
    path = write_parquet(tmp_path / "h.parquet", {**base(), "pdf": list(values)}, meta={"grid": GRID.tolist()})
    sub = read_submission(path, grid=GRID)
    assert sub.form == "histogram" and not sub.problems, sub.problems
    assert_gaussian(sub, 0.05)
    flat = {f"pdf_{i}": values[:, i] for i in range(values.shape[1])}
    path = tmp_path / "h.csv"
    pacsv.write_csv(pa.table({**base(), **flat}), path)
    assert_gaussian(read_submission(path, grid=GRID), 0.05)


def test_mixtures_and_samples(tmp_path):
    two = np.column_stack([MU, MU])
    path = write_parquet(tmp_path / "m.parquet", {**base(), "means": list(two), "stds": list(np.column_stack(
        [SIGMA, SIGMA])), "weights": list(np.full((N, 2), 0.5))})
    sub = read_submission(path)
    assert sub.form == "mixture" and not sub.problems
    assert_gaussian(sub, 0.02)
    flat = {"mean_0": MU, "std_0": SIGMA, "weight_0": np.ones(N)}
    assert_gaussian(read_submission(write_parquet(tmp_path / "m1.parquet", {**base(), **flat})), 0.02)
    samples = MU[:, None] + SIGMA[:, None] * RNG.standard_normal((N, 4000))
    samples = np.maximum(samples, 0.0)
    sub = read_submission(write_parquet(tmp_path / "s.parquet", {**base(), "samples": list(samples)}))
    assert sub.form == "samples" and not sub.problems
    assert_gaussian(sub, 0.15)


def test_csv_and_fits_tables(tmp_path):
    columns = {**base(), **quantile_columns()}
    pacsv.write_csv(pa.table(columns), tmp_path / "r.csv")
    assert_gaussian(read_submission(tmp_path / "r.csv"), 1e-4)
    # FITS with upper-case names and scalar columns (the product reader) ...
    Table({k.upper(): v for k, v in columns.items()}).write(tmp_path / "r.fits")
    sub = read_submission(tmp_path / "r.fits")
    assert np.array_equal(sub.ids, IDS)
    assert_gaussian(sub, 1e-4)
    # ... and with a vector column, levels in the header (astropy)
    table = Table({"OBJECT_ID": IDS, "Z": MU, "QUANTILES": gaussian_quantiles(LEVELS)})
    hdu = fits.table_to_hdu(table)
    hdu.header["QLEVELS"] = json.dumps(LEVELS.tolist())
    hdu.writeto(tmp_path / "v.fits")
    sub = read_submission(tmp_path / "v.fits")
    assert sub.source["point_column"] == "Z"
    assert_gaussian(sub, 1e-4)


def test_qp_hdf5_with_ancillary_ids_or_a_companion(tmp_path):
    ens = qp.Ensemble(qp.mixmod, data={"means": MU[:, None], "stds": SIGMA[:, None], "weights": np.ones((N, 1))})
    ens.set_ancil({"id": IDS, "zmode": MU})
    ens.write_to(str(tmp_path / "e.hdf5"))
    sub = read_submission(tmp_path / "e.hdf5")
    assert sub.form == "qp" and sub.source["qp_class"] == "mixmod" and sub.source["point_column"] == "zmode"
    assert_gaussian(sub, 0.02)
    check_submission(sub, IDS)

    bare = qp.Ensemble(qp.quant, data={"quants": LEVELS, "locs": gaussian_quantiles(LEVELS)})
    bare.write_to(str(tmp_path / "q.hdf5"))
    with pytest.raises(SubmissionError, match="no ids"):
        read_submission(tmp_path / "q.hdf5")
    write_parquet(tmp_path / "ids.parquet", {"object_id": IDS})
    sub = read_submission(tmp_path / "q.hdf5", companion=tmp_path / "ids.parquet")
    assert sub.source["point_column"] == "median of the PDF"
    assert np.allclose(sub.z_phot, MU, atol=1e-5)
    assert_gaussian(sub, 1e-4)


# -- refusals -------------------------------------------------------------------------------------


def problems_of(sub, validation_ids=IDS):
    with pytest.raises(SubmissionError) as info:
        check_submission(sub, validation_ids)
    assert str(info.value).startswith("the submission is refused: ")
    return info.value.problems


def test_ids_unknown_missing_and_duplicated_are_all_reported(tmp_path):
    ids = IDS.copy()
    ids[:3] = [1, 2, 3]  # not in the validation set, so 3 of its ids are missing
    ids[10] = ids[11]  # a duplicate: one more missing
    sub = read_submission(write_parquet(tmp_path / "r.parquet", {**base(ids), **quantile_columns()}))
    problems = problems_of(sub)
    assert len(problems) == 3, problems
    assert problems[0].startswith("1 id appears more than once (2 rows; id ")
    assert problems[1] == "3 ids are not in the validation set (ids 1, 2, 3)"
    assert problems[2].startswith("4 ids of the validation set are missing (ids ")
    assert f"each of its {N} objects" in problems[2]


def test_bad_values_every_problem_at_once(tmp_path):
    z = MU.copy()
    z[0], z[1], z[2] = np.nan, np.inf, -0.1
    quant = quantile_columns()
    quant["z_q_0.5"] = quant["z_q_0.5"].copy()
    quant["z_q_0.5"][5:9] = 10.0  # above the 0.6 quantile: not monotone
    quant["z_q_0"] = quant["z_q_0"].copy()
    quant["z_q_0"][20] = -1.0
    sub = read_submission(write_parquet(tmp_path / "r.parquet", {**base(z=z), **quant}))
    problems = problems_of(sub)
    assert problems == [
        f"1 object has a negative quantile (id {IDS[20]})",
        "4 objects have quantiles that are not monotone (a higher level at a lower redshift) "
        f"(ids {', '.join(str(i) for i in IDS[5:9])})",
        f"2 objects have a NaN or infinite point estimate (z_phot) (ids {IDS[0]}, {IDS[1]})",
        f"1 object has a negative point estimate (z_phot) (id {IDS[2]})",
    ]


def test_histograms_that_do_not_normalize_or_fit_the_grid(tmp_path):
    centres = 0.5 * (GRID[1:] + GRID[:-1])
    density = norm.pdf((centres[None, :] - MU[:, None]) / SIGMA[:, None]) / SIGMA[:, None]
    bad = density.copy()
    bad[:7] *= 1.1
    path = write_parquet(tmp_path / "h.parquet", {**base(), "pdf": list(bad)}, meta={"grid": GRID.tolist()})
    problems = problems_of(read_submission(path))
    assert len(problems) == 1 and problems[0].startswith("7 objects have a PDF that does not integrate to 1 within 1%")
    probabilities = density * np.diff(GRID)[None, :]
    path = write_parquet(tmp_path / "p.parquet", {**base(), "pdf": list(probabilities)}, meta={"grid": GRID.tolist()})
    (problem,) = problems_of(read_submission(path))
    assert problem.startswith(f"{N} objects have a PDF") and "give densities" in problem
    # a grid the values do not fit, and a grid that is not the challenge's
    short = GRID[:-10]
    path = write_parquet(tmp_path / "g.parquet", {**base(), "pdf": list(density)}, meta={"grid": short.tolist()})
    problems = problems_of(read_submission(path, grid=GRID))
    assert problems[0] == ("the histogram grid (791 values from 0 to 3.95) is not the challenge's grid "
                           "(801 values from 0 to 4)")
    assert problems[1].startswith("the histogram has 800 values per object, which fits neither a grid of 791 edges")
    nogrid = write_parquet(tmp_path / "n.parquet", {**base(), "pdf": list(density)})
    assert any("a histogram needs its grid" in p for p in problems_of(read_submission(nogrid)))


def test_mixtures_with_negative_weights_or_stds(tmp_path):
    weights = np.full((N, 2), 0.5)
    weights[:2] = [1.5, -0.5]
    stds = np.column_stack([SIGMA, SIGMA])
    stds[3, 1] = -0.1
    means = np.column_stack([MU, MU])
    means[4, 0] = -0.3
    path = write_parquet(tmp_path / "m.parquet", {**base(), "means": list(means), "stds": list(stds),
                                                  "weights": list(weights)})
    problems = problems_of(read_submission(path))
    assert problems == [f"1 object has a negative mixture mean (id {IDS[4]})",
                        f"1 object has a mixture std that is zero or negative (id {IDS[3]})",
                        f"2 objects have a negative mixture weight (ids {IDS[0]}, {IDS[1]})"]


def test_structural_problems(tmp_path):
    with pytest.raises(SubmissionError, match="no id column: name it 'id' or 'objectId' or 'object_id'"):
        read_submission(write_parquet(tmp_path / "a.parquet", {"galaxy": IDS, "z_phot": MU}))
    sub = read_submission(write_parquet(tmp_path / "b.parquet", {"galaxy": IDS, "z_phot": MU}), id_column="galaxy")
    check_submission(sub, IDS)
    rsp = read_submission(write_parquet(tmp_path / "rsp.parquet", {"objectId": IDS, "z_phot": MU}))
    assert rsp.source["id_column"] == "objectId" and list(rsp.ids) == list(IDS)
    problems = problems_of(read_submission(write_parquet(tmp_path / "c.parquet", {"id": IDS, "photoz": MU})))
    assert problems == ["no point estimate: give a column z_phot (or z)"]
    both = {**base(), **quantile_columns(), "samples": list(np.ones((N, 3)))}
    problems = problems_of(read_submission(write_parquet(tmp_path / "d.parquet", both)))
    assert problems == ["the file holds PDFs in several forms (quantiles, samples): give one"]
    (tmp_path / "e.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(SubmissionError, match="not a qp file"):
        read_submission(tmp_path / "e.hdf5")
    (tmp_path / "f.txt").write_text("id,z\n")
    with pytest.raises(SubmissionError, match="cannot tell the format"):
        read_submission(tmp_path / "f.txt")
    with pytest.raises(SubmissionError, match="ids must be integers"):
        read_submission(write_parquet(tmp_path / "g.parquet", {"id": ["a"] * N, "z_phot": MU}))
    problems = problems_of(read_submission(write_parquet(tmp_path / "h.parquet", {"id": IDS[:0], "z": MU[:0]})))
    assert problems[0] == "the file has no rows"
