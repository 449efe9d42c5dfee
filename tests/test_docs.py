"""The API reference builds with no broken cross-reference, and the
quickstart notebook runs top to bottom."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")


@pytest.mark.slow
def test_api_reference_builds_without_broken_references(tmp_path):
  out = subprocess.run([sys.executable, os.path.join(ROOT, "docs",
                                                     "build_api.py"),
                        "--out", str(tmp_path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  pages = {p.name for p in tmp_path.rglob("*.html")}
  assert {"index.html", "dropgraph.html", "checkpointing.html",
          "nnx_layers.html"} <= pages


@pytest.mark.slow
def test_quickstart_notebook_runs():
  import nbclient
  import nbformat
  path = os.path.join(ROOT, "docs", "quickstart.ipynb")
  notebook = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                          resources={"metadata": {"path": ROOT}}).execute()
  text = "".join(o.get("text", "") for cell in notebook.cells
                 if cell.cell_type == "code" for o in cell.outputs)
  assert "export without graph weights gives the same output: True" in text
  assert "'test_accuracy'" in text
