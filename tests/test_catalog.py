import textwrap

import pytest

from socmap.catalog import (
    catalog_dir,
    embedded_data_dir,
    get_depth_set,
    load_catalog,
    load_depth_sets,
    load_grid,
)
from socmap.errors import BandMismatch, CatalogError, InputNotFound


@pytest.mark.parametrize("name", ["edgeroi", "global_10arcmin", "meuse"])
def test_builtin_catalogs_load_and_sources_exist(name):
    cat = load_catalog(name)
    assert cat.digest and len(cat.digest) == 64
    for spec in cat.covariates:
        assert spec.resolve_source(cat.base_dir).exists(), spec.source
        if spec.kind == "categorical":
            assert spec.classes and spec.resampling in ("nearest", "mode")
        else:
            assert spec.resampling in ("bilinear", "average", "cubic")


def test_global_band_names_match_the_global_site_table():
    import pandas as pd

    cols = pd.read_csv(
        embedded_data_dir() / "global_profiles/global_profiles_sites_with_global_covariates.csv.gz",
        nrows=1,
    ).columns
    assert set(load_catalog("global_10arcmin").band_names) <= set(cols)


def test_depth_sets():
    sets = load_depth_sets()
    assert sets["globalsoilmap"].intervals == (
        (0, 5),
        (5, 15),
        (15, 30),
        (30, 60),
        (60, 100),
        (100, 200),
    )
    assert get_depth_set("VM0033").labels == ["0-15cm", "15-30cm", "30-50cm", "50-100cm"]
    assert get_depth_set("0-30").intervals == ((0, 30),)
    with pytest.raises(CatalogError, match="unknown depth set 'gsm'"):
        get_depth_set("gsm")


def _write(tmp_path, body, name="cat.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


ENTRY = """
  - name: {name}
    source: a.tif
    units: m
    kind: {kind}
    group: terrain
"""


def test_unknown_kind_names_the_entry_and_choices(tmp_path):
    p = _write(tmp_path, "name: t\ncovariates:" + ENTRY.format(name="dem", kind="continous"))
    with pytest.raises(
        CatalogError, match=r"entry 0 \('dem'\).*'continuous' or 'categorical'.*continous"
    ):
        load_catalog(p)


def test_band_listed_twice(tmp_path):
    body = "name: t\ncovariates:" + ENTRY.format(name="dem", kind="continuous") * 2
    with pytest.raises(BandMismatch, match="lists band 'dem' twice"):
        load_catalog(_write(tmp_path, body))


def test_categorical_needs_classes_and_mode(tmp_path):
    p = _write(tmp_path, "name: t\ncovariates:" + ENTRY.format(name="geo", kind="categorical"))
    with pytest.raises(CatalogError, match="class list"):
        load_catalog(p)
    body = (
        "name: t\ncovariates:"
        + ENTRY.format(name="dem", kind="continuous")
        + "    resampling: mode\n"
    )
    with pytest.raises(CatalogError, match="not valid for a continuous layer"):
        load_catalog(_write(tmp_path, body, "b.yaml"))


def test_missing_and_malformed_catalogs(tmp_path):
    with pytest.raises(InputNotFound, match="does not exist"):
        load_catalog(tmp_path / "nope.yaml")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(CatalogError, match="mapping"):
        load_catalog(_write(tmp_path, "- a\n- b\n", "list.yaml"))
    with pytest.raises(CatalogError, match="covariates"):
        load_catalog(_write(tmp_path, "name: t\ncovariates: []\n", "empty.yaml"))


def test_relative_and_ee_sources(tmp_path):
    cat = load_catalog(
        _write(tmp_path, "name: t\ncovariates:" + ENTRY.format(name="dem", kind="continuous"))
    )
    assert cat["dem"].resolve_source(cat.base_dir) == tmp_path / "a.tif"
    body = "name: t\ncovariates:" + ENTRY.format(name="s2", kind="continuous").replace(
        "a.tif", "ee://COPERNICUS/S2"
    )
    cat = load_catalog(_write(tmp_path, body, "ee.yaml"))
    with pytest.raises(CatalogError, match="socmap ee pull"):
        cat["s2"].resolve_source(cat.base_dir)
    with pytest.raises(BandMismatch, match="no band 'x'"):
        cat["x"]


def test_load_grid_forms(tmp_path):
    g = load_grid("edgeroi")
    assert g.shape == (321, 476)
    assert load_grid(catalog_dir() / "covariates" / "edgeroi.yaml") == g
    assert load_grid(embedded_data_dir() / "edgeroi/covariates_100m/MVBSRT6.tif") == g
    with pytest.raises(InputNotFound, match="built-in region"):
        load_grid("atlantis")
    with pytest.raises(CatalogError, match="no 'grid' mapping"):
        load_grid(_write(tmp_path, "name: x\n", "nogrid.yaml"))


@pytest.mark.parametrize(
    ("extra", "match"),
    [("    scale: .nan\n", "scale nan must be a finite number"),
     ("    offset: .inf\n", "offset inf must be a finite number"),
     ("    scale: 0\n", "scale 0 would map every pixel to the offset")],
)  # fmt: skip
def test_scale_and_offset_must_be_usable(tmp_path, extra, match):
    body = "name: t\ncovariates:" + ENTRY.format(name="dem", kind="continuous") + extra
    with pytest.raises(CatalogError, match=match):
        load_catalog(_write(tmp_path, body))


def test_embedded_sources_stay_inside_the_package_data(tmp_path):
    body = "name: t\ncovariates:" + ENTRY.format(name="dem", kind="continuous").replace(
        "a.tif", "embedded://../../../etc/passwd"
    )
    cat = load_catalog(_write(tmp_path, body))
    with pytest.raises(CatalogError, match="leaves socmap's embedded data"):
        cat["dem"].resolve_source(tmp_path)


@pytest.mark.parametrize("url", ["http://example.com/a.tif", "s3://bucket/a.tif"])
def test_remote_sources_are_refused_with_the_download_command(tmp_path, url):
    body = "name: t\ncovariates:" + ENTRY.format(name="dem", kind="continuous").replace(
        "a.tif", url
    )
    cat = load_catalog(_write(tmp_path, body))
    scheme = url.split(":")[0]
    with pytest.raises(CatalogError, match=rf"is a {scheme}:// address.*gdal_translate"):
        cat["dem"].resolve_source(tmp_path)
