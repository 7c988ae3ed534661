"""Every notebook in notebooks/ runs top to bottom (nbclient, FAST=1) and is stored without outputs."""
from __future__ import annotations

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

import tests

# Notebooks that show multi-device code run on the suite's 8 fake devices; the others on one.
DEVICES = {"03_losses_in_your_project": 8}
NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
  assert [p.name for p in NOTEBOOKS][:1] == ["01_prototype_a_loss.ipynb"], NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
  nb = nbformat.read(path, as_version=4)
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None, f"{path.name}: cell {i} has outputs; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_in_fast_mode(path, tmp_path, monkeypatch):
  monkeypatch.setenv("FAST", "1")
  # One CPU device, a reader's laptop (the suite's 8 fake devices slow the kernel down, 52 s -> 44 s for 01),
  # except for the notebooks about several devices.
  monkeypatch.setenv("XLA_FLAGS", tests.xla_flags(DEVICES.get(path.stem, 1)))
  monkeypatch.setenv("RL_NOTEBOOK_TMP", str(tmp_path))  # where a notebook may write runs and data in the suite
  nb = nbformat.read(path, as_version=4)
  client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
  client.execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
  assert not errors, errors
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert "Only one device" not in text, text  # 03's warning that its multi-device cells ran on one device
