"""Every notebook in notebooks/ runs top to bottom without error.

The 60-second budget per notebook is measured outside the tests (timed unit tests
are flaky on a loaded machine); the per-cell timeout here only guards against hangs.
"""

from __future__ import annotations

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
  assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch):
  # the kernel inherits the environment: it imports this checkout's jaxloss whether or not it is installed
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
  notebook = nbformat.read(path, as_version=4)
  assert notebook.cells[0].cell_type == "markdown" and notebook.cells[-1].cell_type == "markdown"
  assert "take away" in notebook.cells[-1].source.lower(), "a notebook ends with what to take away"
  NotebookClient(
    notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
  ).execute()
  errors = [
    o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"
  ]
  assert not errors
