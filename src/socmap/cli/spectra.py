"""Spectra commands: ``socmap spectra select|benchmark``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from socmap.cli._app import (
    out,
    print_frame,
    spectra_app,
)
from socmap.cli._options import (
    NanChoice,
    SelectMethod,
)
from socmap.errors import ConfigError
from socmap.units import MAX_SEED


@spectra_app.command("select")
def spectra_select_cmd(
    table: Annotated[Path, typer.Argument(help="Spectra table (CSV or Parquet, band columns).")],
    n: Annotated[int, typer.Option("--n", help="Samples to choose.")],
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="CSV (or .parquet) of the chosen rows, with selection_order and input_row.",
        ),
    ],
    method: Annotated[SelectMethod, typer.Option(help="Selection algorithm.")] = (
        SelectMethod.kennard_stone
    ),
    quantity: Annotated[
        str, typer.Option(help="What the table holds: reflectance or absorbance.")
    ] = "reflectance",
    grid: Annotated[
        str,
        typer.Option(
            help="library: the range the scans share with the benchmark's library (NIRsoil "
            "for nm, the embedded MIR sites for cm-1), as `spectra benchmark` selects; "
            "measured: every measured band."
        ),
    ] = "library",
    step: Annotated[
        float | None,
        typer.Option(help="With --grid measured: resample onto this step first (nm or cm-1)."),
    ] = None,
    components: Annotated[
        int | None, typer.Option(help="Select on this many principal components.")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=MAX_SEED, help="Seed (k-means).")] = 0,
    nan: Annotated[
        NanChoice,
        typer.Option(
            help="Spectra with NaN values: refuse them (error), fill the gaps along the axis "
            "(interpolate) or leave them out, counted (drop)."
        ),
    ] = NanChoice.error,
) -> None:
    """Choose the samples to send to the lab: spread over the spectral space.

    The spectra go through absorbance and SNV on the benchmark's grid before selecting, so
    the chosen samples are the local set `spectra benchmark` would use (--grid measured
    selects on every measured band instead).
    Example: [bold]socmap spectra select field_scans.csv --n 30 --out to_lab.csv[/bold]
    """
    from socmap.extraction import check_table_path, write_table
    from socmap.spectra import (
        Preprocess,
        kennard_stone,
        kmeans_select,
        read_spectra,
        snv,
        to_absorbance,
    )
    from socmap.spectra.benchmark import benchmark_grid, selection_rule

    # an .xlsx was once written as CSV text under that name; refuse it before any work
    check_table_path(out_path, [table])
    if quantity not in ("reflectance", "absorbance"):
        raise ConfigError(f"--quantity {quantity!r} must be 'reflectance' or 'absorbance'")
    if grid not in ("library", "measured"):
        raise ConfigError(f"--grid {grid!r} must be 'library' or 'measured'")
    if step is not None and grid == "library":
        raise ConfigError(
            f"--step {step!r} resamples the measured bands; add --grid measured (the library "
            "grid has the benchmark's step)"
        )
    if n < 2:
        raise ConfigError(f"--n {n!r} must be 2 or more (the number of samples to choose)")
    if step is not None and not (math.isfinite(step) and step > 0):
        raise ConfigError(f"--step {step!r} must be a positive number of nm or cm-1, e.g. 10")
    spectra = read_spectra(table, quantity=quantity, nan=nan.value)  # type: ignore[arg-type]
    if spectra.n_samples < 2:  # before the library grid, which would blame the bands
        raise ConfigError(
            f"selection needs at least 2 spectra, got {spectra.n_samples} in spectra table "
            f"{str(table)!r}; add rows"
        )
    if spectra.n_samples < n:
        raise ConfigError(
            f"--n {n} is more than the {spectra.n_samples} spectra of {str(table)!r}; choose "
            f"at most {spectra.n_samples}"
        )
    span = float(spectra.axis[-1] - spectra.axis[0])
    if step is not None and step >= span:  # once 'target axis must be increasing ...'
        raise ConfigError(
            f"--step {step:g} leaves fewer than 2 bands over the measured range "
            f"{float(spectra.axis[0]):g}-{float(spectra.axis[-1]):g} {spectra.unit}; choose a "
            f"step below {span:g}"
        )
    chain: Preprocess | None = None
    library_name = ""
    if grid == "library":
        chain, _, library_name = benchmark_grid(spectra)
        prepared = chain.apply(spectra)
    elif step is None:  # keep the measured bands
        prepared = snv(to_absorbance(spectra))
    else:
        first, last = float(spectra.axis[0]), float(spectra.axis[-1])
        chain = Preprocess(first, last, step, unit=spectra.unit)
        prepared = chain.apply(spectra)
        library_name = "no library: the measured range"
    for note in prepared.notes:
        out.print(f"note: {note}")
    if method == SelectMethod.kennard_stone:
        idx = kennard_stone(prepared.values, n, n_components=components)
    else:
        idx = kmeans_select(prepared.values, n, n_components=components, seed=seed)
    frame = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
    chosen = frame.iloc[idx].copy()
    chosen.insert(0, "selection_order", range(1, len(idx) + 1))
    # The row in the user's file (1 = the first row below the header), so a table without
    # sample ids can still be matched back to its samples.
    chosen.insert(1, "input_row", [int(i) + 1 for i in idx])
    write_table(chosen, out_path)
    rule = "Kennard-Stone" if method == SelectMethod.kennard_stone else "k-means"
    out.print(f"selection: {selection_rule(chain, library_name, rule)}")
    out.print(f"chose {len(idx)} of {spectra.n_samples} samples ({method.value}): {out_path}")


@spectra_app.command("benchmark")
def spectra_benchmark_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the results.")],
    sites: Annotated[
        str | None,
        typer.Option(
            help="Comma list of embedded sites or site tables (CSV/Parquet: band columns and "
            "soc_g_kg; library NIRsoil for nm, the embedded MIR sites for cm-1). Default: "
            "every embedded site with SOC."
        ),
    ] = None,
    library: Annotated[
        Path | None,
        typer.Option(
            help="Your own spectral library: a table with band columns and soc_g_kg (g/kg), "
            "on the sites' axis unit. Default: NIRsoil for nm, the embedded MIR sites for cm-1."
        ),
    ] = None,
    quantity: Annotated[
        str, typer.Option(help="What site tables hold: reflectance or absorbance.")
    ] = "reflectance",
    library_quantity: Annotated[
        str, typer.Option(help="What the --library table holds: reflectance or absorbance.")
    ] = "reflectance",
    methods: Annotated[
        str,
        typer.Option(
            help="Comma list of local-pls, local-rf, local-cnn, global-pls, global-cnn, "
            "dtl-i-pls, dtl-i, dtl-r, dtl-ir, or all (local-pls is always run)."
        ),
    ] = "all",
    n_local: Annotated[
        int | None, typer.Option(help="Kennard-Stone local samples per site \\[default: 30].")
    ] = None,
    k: Annotated[
        int | None,
        typer.Option(help="RS-LOCAL instances borrowed from the library \\[default: 100]."),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(help="Repeats with different seeds \\[default: 3, as the published table]."),
    ] = None,
    freeze_front: Annotated[
        int | None, typer.Option(help="Conv blocks frozen in DTL-R/IR \\[default: 2].")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(min=0, max=MAX_SEED, help="Seed of every random step \\[default: 0]."),
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option(
            help="What calibrates the CNN intervals: site-weighted (the local samples, "
            "weighted by the share of test scans nearest to each), site, or all-rows "
            "(library instances too) \\[default: site-weighted]."
        ),
    ] = None,
) -> None:
    """Local, global and transfer models (DTL-I, DTL-R, DTL-IR) at the embedded field sites.

    Kennard-Stone picks --n-local samples per site; the rest of the site is the test set.
    A site may be your own table of scans with SOC (--sites my_site.csv).
    Example: [bold]socmap spectra benchmark --sites CV.98,O.32 --out spec/[/bold]
    """
    from socmap.spectra.benchmark import (
        METHODS,
        SpectralBenchmarkConfig,
        check_benchmark_out,
        spectral_benchmark,
        write_spectral_benchmark,
    )

    check_benchmark_out(out_dir)  # before the benchmark's minutes, not after them

    # an option not given keeps SpectralBenchmarkConfig's default, so the CLI, the API and
    # the published table agree
    given: dict[str, Any] = {"n_local": n_local, "k": k, "repeats": repeats,
                             "freeze_front": freeze_front, "seed": seed,
                             "calibration": calibration}  # fmt: skip
    config = SpectralBenchmarkConfig(**{key: v for key, v in given.items() if v is not None})
    names = [s.strip() for s in sites.split(",") if s.strip()] if sites is not None else None
    if names == []:  # once read as no --sites: every embedded site
        raise ConfigError(
            f"--sites {sites!r} names no site; give embedded sites or site tables, comma "
            "separated (e.g. CV.98,O.32), or drop --sites for every embedded site"
        )
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    chosen = list(METHODS) if chosen == ["all"] else chosen
    result = spectral_benchmark(
        names, chosen, config, library=library, quantity=quantity,
        library_quantity=library_quantity,
    )  # fmt: skip
    paths = write_spectral_benchmark(result, out_dir)
    mean = result.summary[result.summary["site"] == "mean"]
    print_frame(
        mean[["method", "rmse", "me", "ccc", "delta_rmse_pct", "picp90"]].round(3),
        "mean over sites (g/kg; ΔRMSE% vs local PLSR)",
    )
    out.print("\n".join(f"{k}: {v}" for k, v in paths.items()))


@spectra_app.command("ossl")
def spectra_ossl_cmd(
    spectra: Annotated[Path, typer.Argument(help="OSSL vis-NIR or MIR table (CSV or Parquet).")],
    soillab: Annotated[Path, typer.Argument(help="OSSL soil-lab table (CSV or Parquet).")],
    out_path: Annotated[
        Path, typer.Option("--out", "-o", help="Library table to write (CSV or Parquet).")
    ],
    kind: Annotated[str, typer.Option(help="visnir (scan_visnir.*_ref) or mir.")] = "visnir",
    oc_column: Annotated[
        str | None, typer.Option(help="Organic-carbon column (weight %) of the soil-lab table.")
    ] = None,
) -> None:
    """Turn OSSL tables into a library for `spectra benchmark --library` (soc_g_kg, bands).

    Scans without a carbon value or with gaps are left out and counted; each scan keeps its
    OSSL dataset code and licence. MIR libraries hold absorbance: benchmark them with
    --library-quantity absorbance.
    Example: [bold]socmap spectra ossl ossl_visnir.csv ossl_soillab.csv --out lib.csv[/bold]
    """
    from socmap.extraction import check_table_path
    from socmap.spectra.ossl import read_ossl

    if kind not in ("visnir", "mir"):
        raise ConfigError(f"--kind {kind!r} must be 'visnir' or 'mir'")
    check_table_path(out_path, [spectra, soillab])
    library = read_ossl(spectra, soillab, kind, oc_column=oc_column)  # type: ignore[arg-type]
    for note in library.notes:
        out.print(f"note: {note}")
    library.write(out_path)
    out.print(
        f"library: {library.n_samples} scans x {library.n_bands} bands ({library.quantity}, "
        f"{library.unit}): {out_path}"
    )
