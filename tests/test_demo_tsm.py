"""The Training Set Maker's demo inputs, as ``pzvo demo`` (the session fixture) registers them."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.spatial import cKDTree
from sqlalchemy import text

from pipeline.catalog import OBJECT_COLUMNS
from pipeline.product_tables import read_product_table
from pipeline.tsm.flags import homogenize_flags, load_flag_rules
from vo_service.demo import SOURCE, build_tsm_demo, load_demo, objects_dir
from vo_service.demo._tsm import DESI, OBJECTS, RELEASE, ROWS, SIXDF, SURVEYS, VVDS
from vo_service.products import Product
from vo_service.services import Services

SPECZ = [s.product for s in SURVEYS]
ONE_ARCSEC = 2 * np.sin(np.radians(1 / 3600) / 2)  # chord on the unit sphere


def _unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _by_role(product: Product, table: pa.Table, role: str) -> np.ndarray:
    column = next(c.original_name for c in product.columns if c.role == role)
    return table.column(column).to_numpy(zero_copy_only=False)


@pytest.fixture(scope="module")
def products(services: Services) -> dict[str, tuple[Product, pa.Table]]:
    registry = services.products
    found = {}
    for name in ROWS:
        product = registry.get(name, user=None)
        found[name] = (product, read_product_table(registry, product))
    return found


@pytest.fixture(scope="module")
def matched(products: dict[str, tuple[Product, pa.Table]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each spec-z row: the objectId of its nearest object and the separation (arcsec)."""
    product, objects = products[OBJECTS]
    tree = cKDTree(_unit(_by_role(product, objects, "ra"), _by_role(product, objects, "dec")))
    ids = _by_role(product, objects, "id")
    out = {}
    for name in SPECZ:
        product, table = products[name]
        chord, row = tree.query(_unit(_by_role(product, table, "ra"), _by_role(product, table, "dec")))
        out[name] = ids[row], np.degrees(2 * np.arcsin(chord / 2)) * 3600
    return out


def test_four_products_with_types_roles_and_rows(products: dict[str, tuple[Product, pa.Table]]) -> None:
    for name, (product, table) in products.items():
        assert product.product_type == ("objectcatalog" if name == OBJECTS else "speczcat")
        assert product.release == RELEASE and product.official and product.status == "published"
        assert product.row_count == table.num_rows == ROWS[name]
        assert set(product.type.required_roles) <= {c.role for c in product.columns}
    objects, table = products[OBJECTS]
    assert sorted(table.column_names) == sorted(OBJECT_COLUMNS)
    assert table.schema.field("objectId").type == pa.int64()
    roles = {c.original_name: c.role for c in objects.columns}
    assert roles["objectId"] == "id" and roles["coord_ra"] == "ra" and roles["i_cModelFlux"] == "flux_i"
    assert roles["y_cModelFluxErr"] == "fluxerr_y"
    for name in SPECZ:
        roles = {c.role for c in products[name][0].columns if c.role}
        assert {"id", "ra", "dec", "redshift", "quality_flag"} <= roles
    assert "redshift_err" not in {c.role for c in products[SIXDF.product][0].columns}
    with_survey = [n for n in SPECZ if "survey" in {c.role for c in products[n][0].columns}]
    assert with_survey == [VVDS.product, DESI.product]
    names = [{c.original_name for c in products[n][0].columns if c.role == "ra"} for n in SPECZ]
    assert names == [{"RA"}, {"alpha"}, {"TARGET_RA"}]


def test_products_hold_the_built_tables(products: dict[str, tuple[Product, pa.Table]]) -> None:
    demo = build_tsm_demo(SOURCE)
    assert products[OBJECTS][1].equals(demo.objects)
    for name in SPECZ:
        product, table = products[name]
        key = next(c.original_name for c in product.columns if c.role == "id")
        assert table.sort_by(key).equals(demo.catalogs[name].sort_by(key))


def test_every_row_has_its_object_within_one_arcsec(matched: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    demo = build_tsm_demo(SOURCE)
    for _name, (_, sep) in matched.items():
        assert sep.max() < 1.0
        assert np.median(sep) > 0.02  # jittered, not copied
    assert all(len(demo.truth[n]) == ROWS[n] for n in SPECZ)


def test_catalogs_overlap_and_repeat_galaxies(matched: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    per_catalog = {name: Counter(ids.tolist()) for name, (ids, _) in matched.items()}
    for model in SURVEYS:
        repeated = per_catalog[model.product]
        assert sum(n - 1 for n in repeated.values()) == model.n_repeats
        assert max(repeated.values()) == 2
    catalogs_of = Counter(g for counts in per_catalog.values() for g in counts)
    assert sum(n >= 2 for n in catalogs_of.values()) > 1_000
    assert sum(n == 3 for n in catalogs_of.values()) > 100
    demo = build_tsm_demo(SOURCE)
    truth = Counter(g for n in SPECZ for g in set(demo.truth[n].tolist()))
    assert sum(n >= 2 for n in truth.values()) == sum(n >= 2 for n in catalogs_of.values())


def test_every_flag_translates_under_the_shipped_rules(products: dict[str, tuple[Product, pa.Table]]) -> None:
    rules = load_flag_rules()
    homogenized: dict[str, Counter[int]] = {}
    for model in SURVEYS:
        product, table = products[model.product]
        flags = _by_role(product, table, "quality_flag")
        has_survey = any(c.role == "survey" for c in product.columns)
        surveys = _by_role(product, table, "survey") if has_survey else np.full(len(flags), model.survey)
        assert set(surveys.tolist()) == {model.survey}
        result = homogenize_flags(surveys, flags, rules, on_unknown="error", keep_stars=True)
        assert (result.flags >= 0).all()
        homogenized[model.survey] = Counter(result.flags.tolist())
        rule = rules.rule(model.survey)
        assert rule is not None and all(rule.translate(float(v)) is not None for v in set(flags.tolist()))
    assert homogenized["6dFGS"][6] == SIXDF.n_stars
    for survey, counts in homogenized.items():
        assert counts[4] > counts[1] > 0, survey  # mostly secure, some low quality
    assert set(products[VVDS.product][1].column("zflags").to_pylist()) >= {2, 3, 4, 9, 13, 23}


def test_object_dataset_under_var(services: Services) -> None:
    files = sorted(objects_dir(services.settings.var_dir).glob("*.parquet"))
    assert len(files) == 4
    tables = [pq.read_table(f) for f in files]
    assert sum(t.num_rows for t in tables) == ROWS[OBJECTS]
    assert all(sorted(t.column_names) == sorted(OBJECT_COLUMNS) for t in tables)
    edges = [(t.column("coord_dec").to_numpy().min(), t.column("coord_dec").to_numpy().max()) for t in tables]
    assert all(a[1] <= b[0] for a, b in zip(edges, edges[1:], strict=False))  # Dec bands


def test_provenance_leads_back_to_the_shared_catalog(services: Services,
                                                     products: dict[str, tuple[Product, pa.Table]]) -> None:
    with services.owner_engine.connect() as conn:
        for name, (product, _) in products.items():
            row = conn.execute(text(
                "SELECT a.name, u.entity_id FROM provenance.wasderivedfrom d "
                "JOIN provenance.wasgeneratedby g ON g.entity_id = d.used_entity_id "
                "JOIN provenance.activity a ON a.id = g.activity_id "
                "JOIN provenance.used u ON u.activity_id = a.id "
                "WHERE d.generated_entity_id = :e"), {"e": product.entity_id}).one()
            assert row.name == "demo TSM inputs simulation", name
            source = conn.execute(text("SELECT name FROM provenance.entity WHERE id = :e"),
                                  {"e": row.entity_id}).scalar()
            assert source == SOURCE.name


def test_a_second_load_changes_nothing(services: Services) -> None:
    before = {name: services.products.versions(name) for name in ROWS}
    counts = load_demo(services)
    assert {name: counts[name] for name in ROWS} == ROWS
    assert {name: services.products.versions(name) for name in ROWS} == before
