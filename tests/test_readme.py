"""The README's Python examples run as written."""

from __future__ import annotations

import pathlib
import re

import jax
import pytest

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text()
# The "Sharded training" examples need 8 devices: tests/sharding_check.py runs them.
SHARDED = TEXT.split("## Sharded training", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT.replace(SHARDED, ""), flags=re.S)


def test_readme_has_examples():
  assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index):
  namespace: dict = {}
  with jax.numpy_dtype_promotion("standard"):  # as a user runs it (optax needs standard promotion)
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), namespace)
  if "step" in namespace and "loss" in namespace:  # the training loop trains
    assert float(namespace["loss"]) < 1e-2, float(namespace["loss"])
