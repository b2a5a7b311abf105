"""``pzvo validation``: create (administrators), submit and validate, list, show."""
from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests._cli import run_pzvo


@pytest.fixture(scope="module")
def env(database) -> dict[str, str]:
    environ = dict(os.environ, PZVO_DB_NAME=database.db_name, PZVO_VAR_DIR=str(database.var_dir))
    environ.pop("PZVO_USER", None)
    return environ


def test_create_submit_show(env, sets, truth, services, tmp_path) -> None:
    name = f"cli_{uuid.uuid4().hex[:8]}"
    made = run_pzvo(env, "validation", "create", name, "--title", "CLI challenge", "--training",
                    f"{sets['trainingset']}@1", "--validation", f"{sets['validationset']}@1",
                    "--deadline", "2030-01-01T00:00:00Z")
    assert made.returncode == 0, made.stderr[-2000:]
    participant = f"p{uuid.uuid4().hex[:8]}"
    services.auth.add_user(participant)
    result = tmp_path / "result.parquet"
    pq.write_table(pa.table({"id": truth["id"], "z_phot": truth["redshift"]}), result)
    sent = run_pzvo({**env, "PZVO_USER": participant}, "validation", "submit", name, str(result),
                    "--algorithm", "exact")
    assert sent.returncode == 0, sent.stderr[-2000:]
    assert "validated: sigma_mad 0, bias 0, outlier_fraction 0" in sent.stdout
    shown = json.loads(run_pzvo(env, "validation", "show", name).stdout)
    assert [(s["participant"], s["status"]) for s in shown["submissions"]] == [(participant, "validated")]
    assert name in run_pzvo(env, "validation", "list").stdout
    refused = run_pzvo({**env, "PZVO_USER": participant}, "validation", "create", f"x{name}", "--title", "t",
                       "--training", f"{sets['trainingset']}@1", "--validation", f"{sets['validationset']}@1",
                       "--deadline", "2030-01-01T00:00:00Z")
    assert refused.returncode == 1 and "administrators" in refused.stderr


def test_a_refused_file_lists_its_problems(env, sets, truth, tmp_path) -> None:
    name = f"cli_{uuid.uuid4().hex[:8]}"
    assert run_pzvo(env, "validation", "create", name, "--title", "t", "--training", f"{sets['trainingset']}@1",
                    "--validation", f"{sets['validationset']}@1", "--deadline", "2030-01-01T00:00:00Z").returncode == 0
    z = np.asarray(truth["redshift"]).copy()
    z[:4] = np.nan
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": truth["id"], "z_phot": z}), bad)
    sent = run_pzvo(env, "validation", "submit", name, str(bad), "--algorithm", "nan")
    assert sent.returncode == 1 and "nothing was kept" in sent.stderr and "  - " in sent.stderr


def test_standard_sets_from_a_spec_z_catalog(env, services, tmp_path) -> None:
    from vo_service.products import RegistrationRequest

    rng = np.random.default_rng(9)
    path = tmp_path / "specz.parquet"
    pq.write_table(pa.table({"id": np.arange(1000), "ra": rng.uniform(0, 1, 1000), "dec": rng.uniform(0, 1, 1000),
                             "z": rng.uniform(0.1, 2, 1000)}), path)
    source = f"sz_{uuid.uuid4().hex[:8]}"
    services.products.register(RegistrationRequest(
        name=source, product_type="speczcat", main_file=path, main_file_name=path.name,
        columns={"id": {"role": "id"}, "ra": {"role": "ra"}, "dec": {"role": "dec"}, "z": {"role": "redshift"}}),
        services.operator())
    prefix = f"std_{uuid.uuid4().hex[:6]}"
    made = run_pzvo(env, "validation", "sets", f"{source}@1", prefix, "--fraction", "0.75", "--seed", "3",
                    "--stratify", "5")
    assert made.returncode == 0, made.stderr[-2000:]
    training = services.products.get(f"{prefix}_training", user=None)
    validation = services.products.get(f"{prefix}_validation", user=None)
    assert (training.row_count, validation.row_count) == (750, 250) and training.official and validation.official
    assert training.product_type == "trainingset" and validation.product_type == "validationset"
    # Lineage, walked back from each product table: table <- set file <- split activity <- source product.
    from vo_service.provenance import GraphRequest

    source_entity = services.products.get(source, 1, user=None).entity_id
    for made_set in (training, validation):
        graph = services.provenance.graph(GraphRequest(ids=[made_set.entity_id], depth=None))
        derived = {(d["generated_entity_id"], d["used_entity_id"]) for d in graph.wasderivedfrom}
        [set_file] = [used for generated, used in derived if generated == made_set.entity_id]
        assert set_file.startswith("pzvo:coop-sets/") and (set_file, source_entity) in derived
        split = {a["name"] for a in graph.activity}
        assert any(name.startswith(f"standard sets {prefix} from {source} v1") for name in split)
    participant = f"p{uuid.uuid4().hex[:8]}"
    services.auth.add_user(participant)
    refused = run_pzvo({**env, "PZVO_USER": participant}, "validation", "sets", source, f"x{prefix}")
    assert refused.returncode == 1 and "administrators" in refused.stderr


def test_a_new_metric_set_from_the_command_line(env, sets, truth, services, tmp_path) -> None:
    name = f"cli_{uuid.uuid4().hex[:8]}"
    assert run_pzvo(env, "validation", "create", name, "--title", "t", "--training", f"{sets['trainingset']}@1",
                    "--validation", f"{sets['validationset']}@1", "--deadline", "2030-01-01T00:00:00Z").returncode == 0
    result = tmp_path / "result.parquet"
    pq.write_table(pa.table({"id": truth["id"], "z_phot": truth["redshift"]}), result)
    assert run_pzvo(env, "validation", "submit", name, str(result), "--algorithm", "exact").returncode == 0
    participant = f"p{uuid.uuid4().hex[:8]}"
    services.auth.add_user(participant)
    refused = run_pzvo({**env, "PZVO_USER": participant}, "validation", "metrics", name, "sigma_mad")
    assert refused.returncode == 1 and "administrators" in refused.stderr
    changed = run_pzvo(env, "validation", "metrics", name, "sigma_mad,bias")
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "metric set version 2 (sigma_mad, bias)" in changed.stdout and "validated" in changed.stdout
    shown = json.loads(run_pzvo(env, "validation", "show", name).stdout)
    assert shown["metric_set_version"] == 2
    [submission] = shown["submissions"]
    assert submission["status"] == "validated" and "outlier_fraction" not in submission["metrics"]
    bad = run_pzvo(env, "validation", "metrics", name, "sigma_mad,astrology")
    assert bad.returncode == 1 and "astrology" in bad.stderr
