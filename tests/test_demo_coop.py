"""The Validation Cooperative's demo: a challenge with two validated submissions of two estimators."""
from __future__ import annotations

import requests

from vo_service.demo import load_demo


def test_the_demo_challenge_is_filled(services, server) -> None:
    doc = requests.get(f"{server.url}/api/challenges/demo_challenge", timeout=30).json()
    assert doc["validation"] == {"name": "demo_coop_validation", "version": 1} and doc["open"]
    entries = {(s["participant"], s["algorithm"]): s for s in doc["submissions"]}
    assert set(entries) == {("alice", "knn"), ("bob", "mlp")}
    for entry in entries.values():
        assert entry["status"] == "validated"
        assert 0 < entry["metrics"]["sigma_mad"] < 0.05 and entry["metrics"]["n"] == 2000
        assert entry["metrics"]["pit_histogram"] and entry["metrics"]["crps"] > 0
    page = requests.get(f"{server.url}/challenges/demo_challenge", timeout=30).text
    assert page.count("<tr>") >= 3 and "alice" in page and "bob" in page
    assert load_demo(services)["demo_challenge"] == 2  # a second load changes nothing
    again = requests.get(f"{server.url}/api/challenges/demo_challenge", timeout=30).json()
    assert len(again["submissions"]) == 2
