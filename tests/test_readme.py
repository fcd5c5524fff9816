"""The README's Python examples run as written."""

from __future__ import annotations

import pathlib
import re

import jax
import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
  assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
  namespace: dict = {}
  with jax.numpy_dtype_promotion("standard"):  # as a user runs it (optax needs standard promotion)
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), namespace)
  if "step" in namespace and "loss" in namespace:  # the training loop trains
    assert float(namespace["loss"]) < 1e-2, float(namespace["loss"])
