"""Combining spec-z catalogs: known answers on catalogs built here (no database)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.tsm.combine import CombineError, SpeczCatalog, combine, sky_groups
from pipeline.tsm.flags import FlagError, load_flag_rules

ARCSEC = 1 / 3600

RULES_YAML = """
surveys:
  SPEC:  {source: test, instrument: spectroscopic, values: {1: 1, 2: 2, 3: 3, 4: 4, 6: 6}}
  SPEC2: {source: test, instrument: spectroscopic, values: {1: 1, 2: 2, 3: 3, 4: 4, 6: 6}}
  GRISM: {source: test, instrument: grism, values: {1: 1, 2: 2, 3: 3, 4: 4}}
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory):
    path: Path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(RULES_YAML)
    return load_flag_rules(path)


def catalog(label: str, rows: list[tuple]) -> SpeczCatalog:
    """rows: (id, ra, dec, z, z_err, flag, survey)."""
    names = ("id", "ra", "dec", "z", "z_err", "z_flag", "survey")
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    types = (pa.string(), pa.float64(), pa.float64(), pa.float64(), pa.float64(), pa.float64(), pa.string())
    return SpeczCatalog(label, pa.table({n: pa.array(c, t) for n, c, t in zip(names, columns, types, strict=True)}))


def groups_catalogs() -> list[SpeczCatalog]:
    """Seven duplicate groups, each decided by one rule, and two single galaxies.

    Groups are 1 degree apart in RA on the equator; duplicates 0.5 arcsec apart.
    """
    d = 0.5 * ARCSEC
    a = catalog("A", [
        ("a1", 10, 0, 0.50, 0.001, 4, "SPEC"),      # G1 flag: wins (4 > 3)
        ("a2", 11, 0, 0.60, 0.001, 4, "GRISM"),     # G2 instrument: loses to spectroscopic
        ("a3", 12, 0, 0.70, 0.002, 4, "SPEC"),      # G3 z_err: loses (0.002 > 0.001)
        ("a4", 13, 0, 0.80, 0.001, 4, "SPEC2"),     # G4 survey priority: loses (SPEC first)
        ("a5", 14, 0, 0.90, 0.001, 4, "SPEC"),      # G5 same redshift: kept (smallest id)
        ("a6", 15, 0, 1.00, 0.001, 4, "SPEC"),      # G6 unresolved tie (z differs by 0.1)
        ("a7", 16, 0, 1.10, 0.001, 3, "SPEC"),      # G7 within one catalog: loses to a8
        ("a8", 16 + d, 0, 1.10, 0.001, 4, "SPEC"),
        ("a9", 30, 0, 0.30, 0.001, 4, "SPEC"),      # single
    ])
    b = catalog("B", [
        ("b1", 10 + d, 0, 0.51, 0.001, 3, "SPEC"),
        ("b2", 11 + d, 0, 0.61, 0.001, 4, "SPEC"),
        ("b3", 12 + d, 0, 0.71, 0.001, 4, "SPEC"),
        ("b4", 13 + d, 0, 0.81, 0.001, 4, "SPEC"),
        ("b5", 14 + d, 0, 0.9005, 0.001, 4, "SPEC"),
        ("b6", 15 + d, 0, 1.10, 0.001, 4, "SPEC"),
        ("b9", 31, 0, 0.31, 0.001, 4, "SPEC"),      # single
    ])
    return [a, b]


def by_id(result) -> dict[str, int]:
    table = result.table
    return dict(zip(table.column("source_id").to_pylist(), table.column("tie_result").to_pylist(), strict=True))


def test_each_rule_resolves_its_group(rules) -> None:
    result = combine(groups_catalogs(), rules, mode="mark_duplicates", survey_priority=["SPEC", "SPEC2"])
    codes = by_id(result)
    assert codes == {"a1": 1, "b1": 0, "a2": 0, "b2": 1, "a3": 0, "b3": 1, "a4": 0, "b4": 1, "a5": 1, "b5": 0,
                     "a6": 2, "b6": 2, "a7": 0, "a8": 1, "a9": 1, "b9": 1}
    report = result.report
    assert report["resolved_by"] == {"flag": 2, "instrument": 1, "z_err": 1, "survey_priority": 1,
                                     "same_redshift": 1}
    assert report["duplicate_groups"] == 7
    assert report["rows_in_duplicate_groups"] == 14
    assert report["unresolved_ties"] == {"groups": 1, "rows": 2, "removed": 0, "drawn": 0}
    assert report["tie_results"] == {"kept": 8, "removed": 6, "tie": 2, "star": 0}
    assert report["rows_in"] == report["rows_out"] == 16


def test_output_row_keeps_origin_and_group(rules) -> None:
    table = combine(groups_catalogs(), rules, mode="mark_duplicates").table.to_pandas().set_index("source_id")
    assert list(table.loc[["a1", "a9", "b1", "b9"], "combined_id"]) == [1, 9, 10, 16]
    assert table.loc["b6", "source"] == "B" and table.loc["b6", "source_row"] == 5
    assert table.loc["b1", "group_id"] == table.loc["a1", "group_id"] == 1
    assert table.loc["a9", "group_size"] == 1 and table.loc["a8", "group_size"] == 2
    assert table.loc["a2", "instrument_type"] == "grism" and table.loc["a7", "z_flag_homogenized"] == 3


def test_remove_duplicates_and_tie_options(rules) -> None:
    cats = groups_catalogs()
    without = combine(cats, rules, mode="mark_duplicates")
    assert by_id(without)["a4"] == by_id(without)["b4"] == 2  # no survey priority: a tie
    rules_kw = {"survey_priority": ["spec"]}  # case-insensitive; SPEC2 unlisted, so after it
    kept = combine(cats, rules, mode="remove_duplicates", tie="keep_all", **rules_kw)
    assert sorted(by_id(kept)) == ["a1", "a5", "a6", "a8", "a9", "b2", "b3", "b4", "b6", "b9"]
    removed = combine(cats, rules, mode="remove_duplicates", tie="remove_all", **rules_kw)
    assert sorted(by_id(removed)) == ["a1", "a5", "a8", "a9", "b2", "b3", "b4", "b9"]
    assert removed.report["unresolved_ties"] == {"groups": 1, "rows": 2, "removed": 2, "drawn": 0}
    drawn = [combine(cats, rules, mode="remove_duplicates", tie="draw_one", seed=s, **rules_kw)
             for s in range(8)]
    winners = [{k for k in by_id(d) if k in ("a6", "b6")} for d in drawn]
    assert all(len(w) == 1 for w in winners)
    assert {next(iter(w)) for w in winners} == {"a6", "b6"}  # both can win with some seed
    again = combine(cats, rules, mode="remove_duplicates", tie="draw_one", seed=3, **rules_kw)
    assert by_id(again) == by_id(drawn[3])
    assert drawn[0].report["unresolved_ties"]["drawn"] == 1


def test_concatenate_keeps_everything(rules) -> None:
    result = combine(groups_catalogs(), rules, mode="concatenate")
    assert result.table.num_rows == 16
    assert set(result.table.column("tie_result").to_pylist()) == {1}
    assert result.report["duplicate_groups"] == 0


def test_flag_cut_invalid_rows_and_stable_ids(rules) -> None:
    cats = groups_catalogs() + [catalog("C", [("c1", None, 0, 0.5, None, 4, "SPEC"),
                                               ("c2", 50, 95, 0.5, None, 4, "SPEC"),
                                               ("c3", 51, 0, None, None, 4, "SPEC"),
                                               ("c4", 52, 0, 0.4, None, 6, "SPEC"),
                                               ("c5", 53, 0, 0.4, None, 4, "SPEC")])]
    loose = combine(cats, rules, mode="mark_duplicates")
    strict = combine(cats, rules, mode="mark_duplicates", flag_cut=4)
    assert loose.report["invalid"] == 3 and loose.report["flags"]["dropped"]["star"] == 1
    assert strict.report["cut"] == 1 + 2  # the star and the two flag-3 rows
    assert strict.report["flags"]["dropped"]["below_min_flag"] == 2
    ids = {r["source_id"]: r["combined_id"] for r in loose.table.to_pylist()}
    assert all(ids[r["source_id"]] == r["combined_id"] for r in strict.table.to_pylist())
    assert ids["c5"] == 21
    stars = combine(cats, rules, mode="mark_duplicates", keep_stars=True)
    assert by_id(stars)["c4"] == 3


def test_unknown_survey_or_flag(rules) -> None:
    bad = [catalog("X", [("x1", 1, 1, 0.1, None, 4, "NOPE"), ("x2", 2, 1, 0.1, None, 9, "SPEC")])]
    with pytest.raises(FlagError, match="'NOPE'"):
        combine(bad, rules)
    result = combine(bad, rules, on_unknown="drop")
    assert result.report["flags"]["dropped"]["unknown_survey"] == 1
    assert result.report["flags"]["dropped"]["unknown_flag"] == 1
    assert result.table.num_rows == 0


def test_friends_of_friends_chain_and_ra_wrap() -> None:
    ra = np.array([10, 10 + 0.8 * ARCSEC, 10 + 1.6 * ARCSEC, 359.9999, 0.0001, 20, 20])
    dec = np.array([0, 0, 0, 0, 0, 89.99995, 89.99995])
    ra[6] = 200  # the other side of the pole, 0.36 arcsec away
    labels = sky_groups(ra, dec, 1.0)
    assert labels[0] == labels[1] == labels[2]
    assert labels[3] == labels[4] != labels[0]
    assert labels[5] == labels[6]


def test_pair_exactly_at_the_radius_is_a_duplicate() -> None:
    labels = sky_groups(np.array([0.0, 0.0, 0.0]), np.array([0.0, ARCSEC, 2 * ARCSEC + 1e-9]), 1.0)
    assert labels[0] == labels[1] != labels[2]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mode": "merge"}, "mode 'merge'"), ({"tie": "first"}, "tie 'first'"),
    ({"radius_arcsec": 0}, "radius_arcsec"), ({"radius_arcsec": -1}, "radius_arcsec"),
    ({"z_threshold": -0.1}, "z_threshold")])
def test_bad_parameters(rules, kwargs, message) -> None:
    with pytest.raises(CombineError, match=message):
        combine(groups_catalogs(), rules, **kwargs)


def test_catalog_without_a_column_and_no_catalogs(rules) -> None:
    with pytest.raises(CombineError, match="no spec-z catalogs"):
        combine([], rules)
    with pytest.raises(CombineError, match="'Y' lacks the column.*z"):
        combine([SpeczCatalog("Y", pa.table({"id": [1], "ra": [1.0], "dec": [1.0]}))], rules)
