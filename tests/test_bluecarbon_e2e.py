"""Blue-carbon MMRV path end to end on a synthetic marsh (seeded, generated here).

Template pair (core_locations + core_samples) and stratum definitions for four marsh strata,
covariate GeoTIFFs on GDA94 / MGA zone 56 (Moreton Bay), then: profiles -> QC -> VM0033
depths -> fine-tune the shipped global bundle -> maps -> stocks (per-stratum BD constants) ->
stratum totals -> report. The stratum numbers are checked against a hand computation from
the stock maps and the pixel areas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from affine import Affine

from socmap.grid import Grid

CRS = "EPSG:28356"  # GDA94 / MGA zone 56
SHAPE = (48, 64)
TRANSFORM = Affine(30.0, 0.0, 517000.0, 0.0, -30.0, 6970000.0)
STRATA = {  # code: (name, elevation band m AHD, SOC at 0 cm g/kg, BD g/cm3)
    1: ("seagrass flat", (-9.0, 0.2), 25.0, 1.10),
    2: ("mangrove", (0.2, 0.7), 95.0, 0.55),
    3: ("low marsh", (0.7, 1.1), 70.0, 0.70),
    4: ("high marsh", (1.1, 9.0), 45.0, 0.90),
}
CORES_PER_STRATUM = 4


def _fields(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(float)
    elevation = (
        -0.3 + 1.9 * cols / SHAPE[1] + 0.25 * np.sin(rows / 7.0) + rng.normal(0, 0.03, SHAPE)
    )
    ndvi = np.clip(0.2 + 0.5 * np.exp(-((elevation - 0.6) ** 2) / 0.2), 0, 1)
    channel = np.abs(rows - SHAPE[0] / 2 - 6 * np.sin(cols / 9.0)) * 30.0
    stratum = np.zeros(SHAPE, dtype=np.int32)
    for code, (_, (lo, hi), _, _) in STRATA.items():
        stratum[(elevation >= lo) & (elevation < hi)] = code
    return {"elevation": elevation, "ndvi": ndvi, "channel_m": channel, "stratum": stratum}


def _write_tif(path, values, dtype="float32", nodata=-9999.0):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=SHAPE[0],
        width=SHAPE[1],
        count=1,
        dtype=dtype,
        crs=CRS,
        transform=TRANSFORM,
        nodata=nodata,
    ) as dst:
        dst.write(values.astype(dtype), 1)


@pytest.fixture(scope="module")
def marsh(tmp_path_factory):
    """Write the template pair, stratum definitions, polygons, covariates and the catalog."""
    import geopandas as gpd
    from pyproj import Transformer
    from rasterio.features import shapes
    from shapely.geometry import shape

    root = tmp_path_factory.mktemp("bluecarbon")
    fields = _fields()
    for name in ("elevation", "ndvi", "channel_m"):
        _write_tif(root / f"{name}.tif", fields[name])
    _write_tif(root / "stratum.tif", fields["stratum"], dtype="int16", nodata=0)
    catalog = {
        "name": "marsh",
        "description": "synthetic Moreton Bay marsh (test fixture)",
        "covariates": [
            {
                "name": n,
                "source": str(root / f"{n}.tif"),
                "units": u,
                "kind": "continuous",
                "group": g,
                "resampling": "bilinear",
                "nodata": -9999,
            }
            for n, u, g in (
                ("elevation", "m", "terrain"),
                ("ndvi", "1", "vegetation"),
                ("channel_m", "m", "hydrology"),
            )
        ]
        + [
            {
                "name": "stratum_code",
                "source": str(root / "stratum.tif"),
                "units": "class",
                "kind": "categorical",
                "group": "strata",
                "resampling": "nearest",
                "nodata": 0,
                "classes": {c: v[0] for c, v in STRATA.items()},
            }
        ],
    }
    (root / "marsh.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    definitions = pd.DataFrame(
        [
            {"stratum_code": c, "stratum": v[0], "bd_g_cm3": v[3], "bd_sd_g_cm3": 0.05}
            for c, v in STRATA.items()
        ]
    )
    definitions.to_csv(root / "stratum_definitions.csv", index=False)
    polygons = (
        gpd.GeoDataFrame(
            [
                {"stratum": STRATA[int(v)][0], "geometry": shape(g)}
                for g, v in shapes(fields["stratum"], transform=TRANSFORM)
                if int(v) in STRATA
            ],
            crs=CRS,
        )
        .dissolve("stratum")
        .reset_index()
    )
    polygons.to_file(root / "strata.gpkg")
    # cores: a few per stratum, at pixel centres inside it
    rng = np.random.default_rng(11)
    to_geo = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    grid = Grid(CRS, TRANSFORM, SHAPE)
    locations, samples = [], []
    for code, (name, _, soc0, bd) in STRATA.items():
        rr, cc = np.nonzero(fields["stratum"] == code)
        for k in rng.choice(len(rr), CORES_PER_STRATUM, replace=False):
            core = f"{name[:2].upper()}-{len(locations) + 1:02d}"
            lon, lat = to_geo.transform(grid.xs[cc[k]], grid.ys[rr[k]])
            locations.append({"core_id": core, "longitude": lon, "latitude": lat, "stratum": name})
            for top, bottom in ((0, 15), (15, 30), (30, 50), (50, 100)):
                mid = (top + bottom) / 2
                soc = soc0 * np.exp(-mid / 120) * (1 + 0.1 * fields["ndvi"][rr[k], cc[k]])
                samples.append(
                    {
                        "core_id": core,
                        "depth_top_cm": top,
                        "depth_bottom_cm": bottom,
                        "soc_g_kg": soc * rng.lognormal(0, 0.1),
                        "bulk_density_g_cm3": bd + rng.normal(0, 0.04),
                    }
                )
    pd.DataFrame(locations).to_csv(root / "core_locations.csv", index=False)
    pd.DataFrame(samples).to_csv(root / "core_samples.csv", index=False)
    return root


@pytest.mark.slow
def test_bluecarbon_template_to_report(marsh, tmp_path):
    from socmap.catalog import embedded_data_dir
    from socmap.cube import build_cube, open_cube
    from socmap.depth import harmonise
    from socmap.model.bundle import load_bundle
    from socmap.model.finetune import finetune_bundle
    from socmap.predict import predict_cube
    from socmap.profiles import qc_profiles, read_bluecarbon
    from socmap.report.build import build_report
    from socmap.stocks import stocks_for_run
    from socmap.strata import strata_for_run
    from socmap.training import regional_training_table

    profiles = read_bluecarbon(marsh / "core_locations.csv", marsh / "core_samples.csv")
    assert qc_profiles(profiles).flags.empty
    vm0033 = harmonise(profiles, "vm0033", value_cols=("soc_g_kg", "bd_g_cm3")).table
    cube_path = build_cube(
        marsh / "marsh.yaml",
        Grid(CRS, TRANSFORM, SHAPE),
        tmp_path / "c.zarr",
        chunk=32,
        progress=False,
    )
    data = regional_training_table(profiles, open_cube(cube_path), depths="vm0033")
    tuned = finetune_bundle(
        embedded_data_dir() / "bundles" / "global_gsm",
        data,
        tmp_path / "bundle",
        strategy="head",
        depth_set="vm0033",
        block_size=300.0,
        cv_folds=3,
    )
    # the bundle records its inputs' units: the cube's bands and the parent's global ones
    recorded = load_bundle(tuned.bundle).band_units
    assert recorded == {**load_bundle(embedded_data_dir() / "bundles" / "global_gsm").band_units,
                        **data.band_units}  # fmt: skip
    assert set(data.regional_bands) <= set(recorded)
    run = predict_cube(
        tuned.bundle, cube_path, tmp_path / "run", passes=8, workers=0, progress=False
    )
    assert run.depth_labels == ["0-15cm", "15-30cm", "30-50cm", "50-100cm"]
    # per-stratum BD constants from the stratum definitions (the workflow's defaults)
    definitions = pd.read_csv(marsh / "stratum_definitions.csv")
    bd_table = {
        int(r.stratum_code): (float(r.bd_g_cm3), float(r.bd_sd_g_cm3))
        for r in definitions.itertuples()
    }
    stocks_for_run(
        run.path, bd="strata:stratum_code", bd_strata=bd_table, workers=0, progress=False
    )
    res = strata_for_run(run.path, marsh / "strata.gpkg", cores=vm0033, workers=0, progress=False)
    table = res.table.set_index(["stratum", "layer"])
    assert sorted(table.index.get_level_values(0).unique()) == sorted(v[0] for v in STRATA.values())
    # hand computation from the stock maps: area-weighted mean of pixel means, x area, x 44/12
    stock = run.open("stock.zarr")["stock"].sel(stat="mean", depth="0-100cm").values
    codes = open_cube(cube_path).sel(band="stratum_code").values
    area = run.grid.pixel_areas_m2() / 1e4
    for code, (name, *_rest) in STRATA.items():
        inside = (codes == code) & np.isfinite(stock)
        mean = float((stock[inside] * area[inside]).sum() / area[inside].sum())
        row = table.loc[(name, "0-100cm")]
        assert row["mean_t_c_ha"] == pytest.approx(mean, rel=1e-5)
        assert row["total_mg_c"] == pytest.approx(mean * area[inside].sum(), rel=1e-5)
        assert row["total_t_co2e"] == pytest.approx(row["total_mg_c"] * 44 / 12)
        assert row["conservative_t_co2e"] <= row["total_t_co2e"]
        assert row["n_cores"] == CORES_PER_STRATUM and row["min_cores_ok"]
    # the cores' CV comes from their own stocks (SOC x measured BD x thickness)
    assert table.xs("0-100cm", level="layer")["cv_cores"].between(0.0, 1.0).all()
    # the project row sums the strata, draw by draw
    project = pd.read_csv(res.path.parent / "project.csv").set_index("layer")
    for layer, row in project.iterrows():
        strata_rows = table.xs(layer, level="layer")
        assert row["total_mg_c"] == pytest.approx(strata_rows["total_mg_c"].sum(), rel=1e-9)
        assert row["area_ha"] == pytest.approx(strata_rows["area_ha"].sum(), rel=1e-9)
        assert row["co2e_ci95_low"] <= row["total_t_co2e"] <= row["co2e_ci95_high"]
    report = build_report(run.path, title="blue carbon test")
    page = report["html"].read_text()
    assert all(v[0] in page for v in STRATA.values()) and "Stratum stocks" in page
