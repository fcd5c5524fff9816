"""Losses under sharding on 8 virtual CPU devices.

The device count must be set before JAX initialises, so the checks run in a
subprocess (``sharding_check.py``) and the rest of the suite keeps one device.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
import sharding_check

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def report():
  # The subprocess imports this checkout's jaxloss (a worktree's too), whether or not it is installed.
  path = os.pathsep.join([str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
  done = subprocess.run(
    [sys.executable, str(HERE / "sharding_check.py")], cwd=HERE, env=env, capture_output=True, text=True, timeout=600
  )
  assert done.returncode == 0, f"sharding_check.py failed:\n{done.stdout}\n{done.stderr[-5000:]}"
  return done.stdout.splitlines()


@pytest.mark.parametrize("mode", ["explicit", "auto"])
@pytest.mark.parametrize("name", sorted(sharding_check.DATA_PARALLEL))
def test_data_parallel_equals_single_device(report, mode, name):
  assert f"OK data-parallel {mode} {name}" in report


@pytest.mark.parametrize("name", sorted(sharding_check.SET_LOSSES) + list(sharding_check.UNDER_SET_MESH))
def test_set_losses_under_set_mesh_equal_single_device(report, name):
  assert f"OK data-parallel explicit-set_mesh {name}" in report


def test_vocab_parallel_linear_cross_entropy_equals_unsharded(report):
  assert "OK vocab-parallel linear_cross_entropy" in report


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("ordering", ["tokens", "vocabulary"])
def test_token_sharded_linear_cross_entropy_equals_naive(report, ordering, reduction):
  assert f"OK token-sharded linear_cross_entropy {ordering} {reduction}" in report


@pytest.mark.parametrize("name", sorted(sharding_check.GLOBAL_NEGATIVES))
def test_global_negatives_equal_unsharded_loss(report, name):
  assert f"OK global-negatives {name}" in report


def test_siglip_ring_memory_is_blocks_of_the_shard(report):
  assert "OK siglip ring memory" in report


@pytest.mark.parametrize("example", ["data-parallel", "vocab-parallel", "global-negatives"])
def test_readme_sharded_training_examples_run_and_match(report, example):
  assert f"OK readme {example}" in report
