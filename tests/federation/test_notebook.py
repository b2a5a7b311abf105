"""docs/examples/federation.ipynb runs (nbclient) with objects from the second instance and
photo-zs from this one, and finds the rows a pandas join finds."""
from __future__ import annotations

import os
import re

import nbformat
from nbclient import NotebookClient

from vo_service.core.settings import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "docs" / "examples" / "federation.ipynb"


def test_the_federation_notebook_runs(remote, server, objects_frame, photoz_frame, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("OBJECTS_TAP", remote.url)
    monkeypatch.setenv("PZ_TAP", server.url + "/tap")
    monkeypatch.delenv("OBJECTS_TABLE", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                   ).execute(env=dict(os.environ))
    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    chosen = objects_frame[objects_frame["coord_dec"].between(-33, -31) & (objects_frame["i_cModelFlux"] > 5000)]
    want = len(chosen.merge(photoz_frame, on="objectId"))
    assert f"joined rows: {want}" in text and want > 100
    assert f"joined in chunks: {want}, the same rows: True" in text
    plots = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert plots, "the plot cell shows a figure"
    assert not re.search(r"Traceback|Error", text)
