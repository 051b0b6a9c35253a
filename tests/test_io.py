from pathlib import Path

import pytest

from socmap._io import atomic_path, check_out_folder, wrote_file
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


def test_a_file_never_replaces_a_folder_nor_a_folder_a_file(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.docx").write_text("years of work")
    refused = pytest.raises(OutputExists, match="is a folder; socmap writes a file there")
    with refused, atomic_path(folder) as tmp:
        tmp.write_text("<html></html>")
    assert (folder / "thesis.docx").read_text() == "years of work"
    note = tmp_path / "note.txt"
    note.write_text("keep me")
    refused = pytest.raises(OutputExists, match="is a file; socmap writes a folder there")
    with refused, atomic_path(note) as tmp:
        tmp.mkdir()
    assert note.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "note.txt"]  # no temporaries


def test_a_folder_output_replaces_only_the_files_socmap_wrote(tmp_path: Path) -> None:
    out = tmp_path / "qc"
    check_out_folder(out, files=("flags.csv",))  # nothing there yet
    with atomic_path(out / "flags.csv", record=True) as tmp:
        tmp.write_text("first")
    check_out_folder(out, files=("flags.csv",))  # socmap's own: a rerun may replace it
    with atomic_path(out / "flags.csv", record=True) as tmp:
        tmp.write_text("second")
    assert wrote_file(out / "flags.csv")
    (out / "flags.csv").write_text("second, with my notes")  # edited by hand
    with pytest.raises(OutputExists, match=r"already holds 'flags.csv'.*changed since"):
        check_out_folder(out, files=("flags.csv",))
    (out / "summary.md").write_text("mine")  # a user's file, never recorded
    assert not wrote_file(out / "summary.md")
    with pytest.raises(OutputExists, match=r"'summary.md', which socmap did not write"):
        check_out_folder(out, files=("summary.md",))
    check_out_folder(out, files=("other.csv",))  # names it does not write are not its business
