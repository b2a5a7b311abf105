"""Validation Cooperative challenges over HTTP: created by administrators only, listed for
everyone, bound to training and validation set products by version; metrics queryable by ADQL."""
from __future__ import annotations

import uuid

import pytest
import requests

from tests.coop_api.conftest import admin_headers, user_headers


def body(sets: dict[str, str], **changes) -> dict:
    raw = {"name": f"ch_{uuid.uuid4().hex[:8]}", "title": "DP1 photo-z challenge", "description": "# Rules\n...",
           "training": {"name": sets["trainingset"], "version": 1},
           "validation": {"name": sets["validationset"], "version": 1},
           "deadline": "2027-03-01T00:00:00Z", "pdf_forms": ["quantiles", "histogram"]}
    raw.update(changes)
    return raw


def test_an_admin_creates_a_challenge_everyone_lists_it(api, services, sets) -> None:
    admin = admin_headers(services)
    sent = body(sets)
    response = requests.post(f"{api}/challenges", json=sent, headers=admin, timeout=30)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == created["url"]
    assert created["open"] is True and created["submissions"] == []
    assert created["validation"] == sent["validation"] and created["deadline"].startswith("2027-03-01T00:00:00")
    listed = requests.get(f"{api}/challenges", timeout=30).json()["items"]
    assert sent["name"] in [c["name"] for c in listed]
    one = requests.get(created["url"], timeout=30).json()
    assert one["title"] == sent["title"] and one["metric_set"] == ["sigma_mad", "bias", "outlier_fraction", "pit",
                                                                   "cde_loss", "crps"]


def test_only_administrators_create(api, services, sets) -> None:
    assert requests.post(f"{api}/challenges", json=body(sets), timeout=30).status_code == 401
    response = requests.post(f"{api}/challenges", json=body(sets), headers=user_headers(services), timeout=30)
    assert response.status_code == 403 and "administrators" in response.json()["detail"]


@pytest.mark.parametrize(("change", "words"), [
    ({"name": "Bad Name"}, "name 'Bad Name'"),
    ({"deadline": "next monday"}, "not an ISO 8601 time"),
    ({"deadline": "2027-03-01T00:00:00"}, "no time zone"),
    ({"training": {"name": "no_such_product", "version": 1}}, "training: no product no_such_product"),
    ({"validation": {"name": "demo_objects", "version": 1}}, "is a objectcatalog, not a validationset"),
])
def test_bad_challenges_are_refused_with_the_reason(api, services, sets, change, words) -> None:
    response = requests.post(f"{api}/challenges", json=body(sets, **change), headers=admin_headers(services),
                             timeout=30)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]


def test_a_second_challenge_of_the_same_name_and_an_unknown_one(api, services, sets) -> None:
    admin = admin_headers(services)
    sent = body(sets)
    assert requests.post(f"{api}/challenges", json=sent, headers=admin, timeout=30).status_code == 201
    again = requests.post(f"{api}/challenges", json=sent, headers=admin, timeout=30)
    assert again.status_code == 422 and "exists" in again.json()["detail"]
    assert requests.get(f"{api}/challenges/no_such_challenge", timeout=30).status_code == 404


def test_the_metrics_table_is_in_tap(server) -> None:
    import pyvo

    tap = pyvo.dal.TAPService(server.url + "/tap")
    result = tap.run_sync("SELECT challenge, submission_id, sigma_mad, pit_chi2_p, crps FROM coop.metrics")
    assert result.to_table().colnames == ["challenge", "submission_id", "sigma_mad", "pit_chi2_p", "crps"]
