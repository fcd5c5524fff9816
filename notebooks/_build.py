"""Build the notebooks from their sources, execute them and save them with their outputs.

Each notebook ``notebooks/NN_name.ipynb`` is written from ``notebooks/sources/NN_name.py``, a Python
file in the "percent" format (as jupytext reads it): ``# %%`` starts a code cell, ``# %% [markdown]``
a markdown cell whose lines are comments (``# `` is stripped). Run from anywhere:

  python notebooks/_build.py                 # every notebook
  python notebooks/_build.py 01 tour         # the notebooks whose name contains any of the words

The kernel imports jaxloss from this checkout (the repository root is put first on PYTHONPATH).
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import time

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = HERE / "sources"
CELL = re.compile(r"^# %%(?P<markdown> \[markdown\])?[^\n]*$", re.MULTILINE)


def parse(text: str) -> list[nbformat.NotebookNode]:
  """The cells of a percent-format source (anything before the first marker is ignored)."""
  markers = list(CELL.finditer(text))
  cells = []
  for marker, following in zip(markers, [*markers[1:], None], strict=True):
    body = text[marker.end() : following.start() if following else len(text)].strip("\n")
    if marker["markdown"]:
      lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.splitlines()]
      cells.append(nbformat.v4.new_markdown_cell("\n".join(lines).strip("\n")))
    else:
      cells.append(nbformat.v4.new_code_cell(body))
  return cells


def build(source: pathlib.Path) -> float:
  """Write and execute ``notebooks/<source stem>.ipynb``; returns the execution time in seconds."""
  notebook = nbformat.v4.new_notebook(cells=parse(source.read_text()))
  notebook.metadata = {
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
  }
  client = NotebookClient(
    notebook,
    timeout=300,
    kernel_name="python3",
    record_timing=False,
    coalesce_streams=True,  # one output per stream and cell: how the kernel happened to flush does not show in diffs
    resources={"metadata": {"path": str(HERE)}},
  )
  start = time.perf_counter()
  client.execute()
  elapsed = time.perf_counter() - start
  for index, cell in enumerate(notebook.cells):
    cell.id = f"cell-{index}"  # stable ids: rebuilding an unchanged notebook leaves its diff to the outputs
  nbformat.write(notebook, HERE / f"{source.stem}.ipynb")
  return elapsed


def main(words: list[str]) -> None:
  root = str(HERE.parent)
  os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
  sources = sorted(p for p in SOURCES.glob("*.py") if not words or any(w in p.stem for w in words))
  if not sources:
    raise SystemExit(f"no source in {SOURCES} matches {words}")
  for source in sources:
    print(f"{source.stem}: executed in {build(source):.1f} s", flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])
