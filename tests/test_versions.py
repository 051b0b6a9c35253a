import socmap
from socmap._versions import LIBRARIES, versions


def test_versions_list_python_socmap_and_every_installed_library():
    found = versions()
    assert list(found)[:2] == ["python", "socmap"] and found["socmap"] == socmap.__version__
    assert {"numpy", "pandas", "torch"} <= set(found) <= {"python", "socmap", *LIBRARIES}
    marked = versions(missing="not installed")
    assert set(marked) == {"python", "socmap", *LIBRARIES}


def test_show_versions_is_on_the_facade_and_prints_one_line_each(capsys):
    socmap.show_versions()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(LIBRARIES) + 3  # python, socmap, platform
    assert lines[1].split() == ["socmap", socmap.__version__]
