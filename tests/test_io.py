import pytest

from socmap._io import atomic_path
from socmap.errors import OutputExists


def test_atomic_file_and_directory(tmp_path):
    dest = tmp_path / "out.txt"
    with atomic_path(dest) as tmp:
        tmp.write_text("one")
        assert not dest.exists()
    assert dest.read_text() == "one"
    with atomic_path(dest) as tmp:
        tmp.write_text("two")
    assert dest.read_text() == "two"
    d = tmp_path / "store.zarr"
    with atomic_path(d) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("x")
    assert (d / "a").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "store.zarr"]


def test_failure_leaves_previous_output_and_no_temporaries(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_refuses_to_overwrite_when_asked(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(OutputExists, match="overwrite"), atomic_path(dest, overwrite=False):
        pass
