"""notebooks/jaxgan_tour.ipynb is committed without outputs and runs from top to bottom in a Jupyter
kernel of this Python, importing this checkout's jaxgan, its figures shown inline."""

from __future__ import annotations

import os
import pathlib
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the dev extra: "
                                                       "pip install -e '.[dev]'")

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "jaxgan_tour.ipynb"
# A cell's limit: generous against a busy machine (the slowest cell, the sweep, took 24-32 s on 2 cores
# shared with other jobs; the whole notebook 36-55 s), so that only a hung kernel reaches it.
CELL_TIMEOUT_S = 300
# Appended to the executed copy: which Python and which jaxgan the kernel ran.
WHERE = "import sys\nimport jaxgan\nprint(sys.executable)\nprint(jaxgan.__file__)"


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_is_committed_without_outputs():
    notebook = read_notebook()
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
    assert notebook.metadata.kernelspec.name == "python3"


def test_the_notebook_runs_top_to_bottom_in_this_python(tmp_path, subprocess_env):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = read_notebook()
    notebook.cells.append(nbformat.v4.new_code_cell(WHERE))
    # The kernel imports this checkout (not an installed copy), writes its temporary run folders
    # under tmp_path, and uses the CPU as the other subprocesses of the suite do.
    env = {**subprocess_env, "TMPDIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(tmp_path)}})
    began = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError, with the cell and its traceback, if one fails
    seconds = time.perf_counter() - began
    print(f"the notebook ran in {seconds:.1f} s")

    executable, module = notebook.cells[-1].outputs[0]["text"].split()
    assert os.path.realpath(executable) == os.path.realpath(sys.executable)
    assert pathlib.Path(module).resolve() == ROOT / "jaxgan" / "__init__.py"
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) >= 4  # the sweep's curves, the GAN's progress, the samples, the interpolation
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "largest difference of the logits" in text and "step 880" in text
    assert "latents (3, 9, 100) images (3, 9, 28, 28) probs (3, 9, 10)" in text
