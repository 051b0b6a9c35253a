"""Execute every notebook with a real Jupyter kernel (nbclient), so the notebooks cannot rot.

The notebooks are stored without outputs; this test runs them in a temporary copy and never
writes outputs back. The kernel imports socmap from its installed wheel (``wheel_site``),
not from the checkout, as a user's would: the quickstart is then also the test that a wheel
install runs the demo path from the Edgeroi cores to the report.
"""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from _browser import check_map_page, check_report_page, check_report_pdf

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_the_docs_promise_exist_and_are_stored_without_outputs():
    names = [p.name for p in NOTEBOOKS]
    assert "01_quickstart.ipynb" in names and "02_transfer_experiment.ipynb" in names
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert code and all(not c["outputs"] and c["execution_count"] is None for c in code), path


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch, wheel_site, request):
    monkeypatch.setenv("SOCMAP_PROGRESS", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", str(wheel_site))
    nb = nbformat.read(path, as_version=4)
    quickstart = path.name == "01_quickstart.ipynb"
    if quickstart:  # where the demo path wrote its run and report, for the browser checks
        nb.cells.append(nbformat.v4.new_code_cell(
            "import json\nprint(json.dumps({'run': str(run.path), "
            "**{k: str(v) for k, v in report.items()}}))"
        ))  # fmt: skip
    nb.cells.append(nbformat.v4.new_code_cell("import socmap\nprint(socmap.__file__)"))
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    where = "".join(out.get("text", "") for out in nb.cells[-1].get("outputs", [])).strip()
    assert Path(where).is_relative_to(wheel_site), where
    if quickstart:  # the demo path's report, map page and PDF pass the browser checks
        printed = "".join(out.get("text", "") for out in nb.cells[-2].get("outputs", []))
        paths = {k: Path(v) for k, v in json.loads(printed).items()}
        browser = request.getfixturevalue("browser")
        check_report_page(browser, paths["html"], "quickstart_report.png")
        check_map_page(browser, paths["map"], paths["run"], "quickstart_map.png")
        check_report_pdf(paths["pdf"], paths["run"])
