import re

import numpy as np
import pandas as pd
import pytest

from socmap.datasets import synthetic_soil_field
from socmap.errors import ConfigError, ProfileValidationError
from socmap.model.baselines import RegionalForest
from socmap.validate import BlockKFold
from socmap.validate.cv import cross_validate

BANDS = ["temperature", "precipitation", "elevation", "ndvi", "landcover"]


@pytest.fixture(scope="module")
def field():
    t = synthetic_soil_field(160, depths="vm0033", seed=4).table
    t.loc[t.index[::17], "soc_g_kg"] = np.nan  # some rows without a target
    return t


def _cv(seed=0):
    return BlockKFold(n_splits=5, block_size=10.0, random_state=seed)


def _forest():
    return RegionalForest(BANDS, n_estimators=40, random_state=0)


def test_oof_covers_every_row_with_a_target_once(field):
    res = cross_validate(_forest(), field, _cv(), progress=False)
    assert res.n_rows_without_target == int(field["soc_g_kg"].isna().sum())
    assert len(res.oof) == int(field["soc_g_kg"].notna().sum())
    assert set(res.oof["fold"]) == set(range(5))
    assert res.oof["mean_log"].notna().all()
    # profiles are never split across folds
    assert (res.oof.groupby("site_id")["fold"].nunique() == 1).all()
    summary = res.summary()
    assert set(summary.index) == {"0-15cm", "15-30cm", "30-50cm", "50-100cm", "all"}
    assert summary.loc["all", "r2"] > 0.5
    m = res.metrics.set_index(["depth", "metric"])["value"]
    raw = [m[("all", f"picp_{tag}")] for tag in ("50", "80", "90", "95")]
    calibrated = [m[("all", f"calibrated_picp_{tag}")] for tag in ("50", "80", "90", "95")]
    assert raw == sorted(raw) and calibrated == sorted(calibrated)  # wider intervals cover more
    # calibrated on these out-of-fold predictions, the coverage is the nominal one
    for got, level in zip(calibrated, (0.5, 0.8, 0.9, 0.95), strict=True):
        assert abs(got - level) < 0.05, (got, level)


class Overconfident(RegionalForest):
    def predict_log(self, X):
        mean, sd = super().predict_log(X)
        return mean, 0.3 * sd


def test_infinite_calibrated_intervals_are_said_not_reported_as_coverage(field):
    # 8 profiles, one interval, 2 folds: each fold is calibrated on about 4 residuals, and
    # the 90 % conformal rank ceil(0.9 (n + 1)) exceeds n below 9: infinite intervals
    top = field[field["top_cm"] == field["top_cm"].min()]
    few = top[top["site_id"].isin(top["site_id"].unique()[:8])]
    res = cross_validate(_forest(), few, BlockKFold(2, 10.0, random_state=0), progress=False)
    m = res.metrics.set_index(["depth", "metric"])["value"]
    assert m[("all", "calibrated_mpiw_90")] == np.inf  # kept visible in metrics.csv
    assert m[("all", "calibrated_picp_90")] == 1.0
    line = res.coverage_line(0.9)
    assert "1.000 calibrated" not in line
    assert re.search(
        r"calibrated 90% intervals are infinite for \d+ of \d+ rows \(calibrated_mpiw_90 = "
        r"inf in metrics.csv\): too few profiles per fold to calibrate, [1-8] calibration "
        r"residuals where the 90% level needs at least 9; use more profiles$",
        line,
    ), line
    # enough profiles: the calibrated coverage is reported as such
    full = cross_validate(_forest(), field, _cv(), progress=False).coverage_line(0.9)
    assert re.fullmatch(r"90% intervals cover 0\.\d{3} raw, 0\.\d{3} calibrated", full), full


def test_calibration_brings_coverage_to_nominal(field):
    est = Overconfident(BANDS, n_estimators=40, random_state=0)
    res = cross_validate(est, field, _cv(), progress=False)
    m = res.metrics.set_index(["depth", "metric"])["value"]
    # intervals from a too-small sd under-cover; cross-fitted conformal calibration fixes it
    assert m[("all", "picp_90")] < 0.6
    assert m[("all", "calibrated_picp_90")] == pytest.approx(0.9, abs=0.05)


def test_model_selection_never_reads_the_test_fold(field):
    """Poison the held-out targets: out-of-fold predictions must not change."""
    base = cross_validate(_forest(), field, _cv(), progress=False).oof
    for k in range(5):
        poisoned = field.copy()
        in_fold = poisoned["site_id"].isin(base.loc[base["fold"] == k, "site_id"])
        poisoned.loc[in_fold & poisoned["soc_g_kg"].notna(), "soc_g_kg"] = 1e4
        again = cross_validate(_forest(), poisoned, _cv(), progress=False).oof
        rows = (again["fold"] == k).to_numpy()
        np.testing.assert_array_equal(again.loc[rows, "mean_log"], base.loc[rows, "mean_log"])
        assert not np.array_equal(
            again["mean_log"], base["mean_log"]
        )  # the poison is visible elsewhere


def test_fit_sees_only_training_rows(field):
    seen: list[set] = []

    class Spy(RegionalForest):
        def fit(self, X, y=None):
            seen.append(set(X["site_id"]))
            return super().fit(X, y)

    res = cross_validate(Spy(BANDS, n_estimators=5, random_state=0), field, _cv(), progress=False)
    for k, train_sites in enumerate(seen):
        test_sites = set(res.oof.loc[res.oof["fold"] == k, "site_id"])
        assert train_sites.isdisjoint(test_sites)


def test_same_seed_same_table(field):
    a = cross_validate(_forest(), field, _cv(1), progress=False).metrics
    b = cross_validate(_forest(), field, _cv(1), progress=False).metrics
    pd.testing.assert_frame_equal(a, b)


def test_bad_input(field):
    with pytest.raises(ProfileValidationError, match="target column"):
        cross_validate(_forest(), field.drop(columns="soc_g_kg"), _cv(), progress=False)
    with pytest.raises(ProfileValidationError, match="no row"):
        cross_validate(_forest(), field.assign(soc_g_kg=np.nan), _cv(), progress=False)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5])
def test_n_jobs_that_joblib_cannot_use_are_refused_before_any_fit(field, n_jobs):
    # n_jobs=0 once failed inside joblib ('n_jobs == 0 in Parallel has no meaning')
    with pytest.raises(ConfigError, match=rf"--jobs {n_jobs!r} must be .* -1 for every core"):
        cross_validate(_forest(), field, _cv(), n_jobs=n_jobs, progress=False)


def test_parallel_folds_give_the_same_table(field):
    serial = cross_validate(_forest(), field, _cv(), progress=False)
    parallel = cross_validate(_forest(), field, _cv(), n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(serial.oof, parallel.oof)
    pd.testing.assert_frame_equal(serial.metrics, parallel.metrics)


def test_area_of_applicability_is_reported_per_fold(field):
    bands = ["temperature", "precipitation", "elevation", "ndvi"]
    res = cross_validate(_forest(), field, _cv(), aoa_bands=bands, progress=False)
    folds = res.folds
    assert list(folds["fold"]) == [0, 1, 2, 3, 4]
    assert (folds["aoa_threshold"] > 0).all()
    assert folds["aoa_inside"].between(0, 1).all()
    assert folds["n_train_sites"].sum() == 4 * folds["n_test_sites"].sum()
    oof = res.oof
    for k, g in oof.groupby("fold"):
        threshold = folds.loc[folds["fold"] == k, "aoa_threshold"].iloc[0]
        np.testing.assert_array_equal(g["inside_aoa"], g["di"] <= threshold)
        sites = g.drop_duplicates("site_id")
        assert folds.loc[k, "aoa_inside"] == pytest.approx(sites["inside_aoa"].mean())
    # without bands the folds table has no AOA columns
    plain = cross_validate(_forest(), field, _cv(), progress=False)
    assert "aoa_threshold" not in plain.folds.columns and "di" not in plain.oof.columns


# ------------------------------------------------------------------ what each fold's fit chose
class Chooser(RegionalForest):
    """A forest that records choices the way the transfer estimators do."""

    def fit(self, X, y=None):
        from socmap.model.train import History

        super().fit(X, y)
        n = X["site_id"].nunique()
        self.strategy_ = f"sites{n}"
        self.weight_ = np.float64(n / 1000)
        self.inner_mae_ = {"full": 1.5, "head": float(n)}
        self.history_ = History(train_loss=[1.0] * (n % 7 + 2), best_epoch=n % 5)
        self.coef_ = np.zeros(3)  # an array: not recorded
        self.reason_ = "x" * 200  # too long: not recorded
        return self


def test_fold_records_for_a_forest(field):
    res = cross_validate(RegionalForest(BANDS, n_estimators=20, random_state=0), field, _cv(),
                         progress=False)  # fmt: skip
    assert len(res.fitted) == 5
    assert all(rec == {"n_rows_without_target_": 0} for rec in res.fitted)
    assert (res.folds["n_rows_without_target_"] == 0).all()


def test_fold_records_follow_each_fold_also_in_parallel(field):
    est = Chooser(BANDS, n_estimators=20, random_state=0)
    res = cross_validate(est, field, _cv(), progress=False)
    f = res.folds
    n = f["n_train_sites"]
    assert list(f["strategy_"]) == [f"sites{k}" for k in n]
    np.testing.assert_allclose(f["weight_"], n / 1000)
    assert list(f["history_.best_epoch"]) == list(n % 5)
    assert list(f["history_.epochs_run"]) == list(n % 7 + 2)
    assert list(f["inner_mae_.head"]) == list(n.astype(float))
    assert "coef_" not in f.columns and "reason_" not in f.columns
    assert res.fitted[0]["strategy_"] == f.loc[0, "strategy_"]
    parallel = cross_validate(est, field, _cv(), n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(res.folds, parallel.folds)
    assert parallel.fitted == res.fitted


def test_fitted_attributes_keeps_only_small_values():
    from socmap.validate import fitted_attributes

    class Fitted:
        def __init__(self):
            self.alpha = 3  # a parameter
            self._private_ = 1
            self.n_ = np.int64(4)
            self.ok_ = np.bool_(True)
            self.loss_ = float("nan")
            self.table_ = pd.DataFrame({"best_epoch": [1]})  # never read as a history
            self.models_ = {(0, 5): RegionalForest()}  # not scalars: left out

    assert fitted_attributes(Fitted()) == {"loss_": None, "n_": 4, "ok_": True}
    rec = fitted_attributes(Fitted())
    assert type(rec["n_"]) is int and type(rec["ok_"]) is bool


# ------------------------------------------------------------------ user folds and training sets
def _with_user_folds(field):
    sites = field["site_id"].unique()
    labels = {s: ("east", "north", "west")[i % 3] for i, s in enumerate(sites)}
    return field.assign(fold=field["site_id"].map(labels)), labels


def test_user_folds_column_is_honoured_exactly(field):
    from socmap.validate import ColumnFolds

    table, labels = _with_user_folds(field)
    res = cross_validate(_forest(), table, ColumnFolds("fold"), progress=False)
    oof = res.oof
    assert list(res.folds["fold_id"]) == ["east", "north", "west"]
    np.testing.assert_array_equal(oof["fold_id"], oof["site_id"].map(labels))
    np.testing.assert_array_equal(oof["fold_id"], np.array(["east", "north", "west"])[oof["fold"]])
    for k, label in enumerate(["east", "north", "west"]):
        held = {s for s, f in labels.items() if f == label}
        held &= set(field.loc[field["soc_g_kg"].notna(), "site_id"])
        assert res.folds.loc[k, "n_test_sites"] == len(held)


def test_profile_split_across_user_folds_raises(field):
    from socmap.validate import ColumnFolds

    table, _ = _with_user_folds(field)
    site = table["site_id"].iloc[0]
    row = table.index[(table["site_id"] == site) & table["soc_g_kg"].notna()][-1]
    table.loc[row, "fold"] = "west" if table.loc[row, "fold"] != "west" else "east"
    with pytest.raises(ProfileValidationError, match=rf"profile '{site}' has rows in folds"):
        cross_validate(_forest(), table, ColumnFolds("fold"), progress=False)


def test_listed_training_sites_per_fold(field):
    from socmap.errors import ConfigError

    base = cross_validate(_forest(), field, _cv(), progress=False).oof
    fold_of = base.drop_duplicates("site_id").set_index("site_id")["fold"]
    rows = []
    for k in range(5):
        train = sorted(fold_of.index[fold_of != k])[: 6 + k]
        rows += [{"fold": k, "site_id": s} for s in train]
    listing = pd.DataFrame(rows)
    seen: list[set] = []

    class Spy(RegionalForest):
        def fit(self, X, y=None):
            seen.append(set(X["site_id"]))
            return super().fit(X, y)

    res = cross_validate(Spy(BANDS, n_estimators=5, random_state=0), field, _cv(),
                         train_sites=listing, progress=False)  # fmt: skip
    for k in range(5):
        assert seen[k] == set(listing.loc[listing["fold"] == k, "site_id"])
    assert list(res.folds["n_train_sites"]) == [6, 7, 8, 9, 10]
    # the same as a mapping
    mapping = {k: g["site_id"].tolist() for k, g in listing.groupby("fold")}
    again = cross_validate(_forest(), field, _cv(), train_sites=mapping, progress=False)
    assert list(again.folds["n_train_sites"]) == [6, 7, 8, 9, 10]
    leak = pd.concat(
        [listing, pd.DataFrame({"fold": [0], "site_id": [fold_of.index[fold_of == 0][0]]})]
    )
    with pytest.raises(
        ConfigError, match="profiles of fold 0 as training profiles of that same fold"
    ):
        cross_validate(_forest(), field, _cv(), train_sites=leak, progress=False)
    with pytest.raises(ConfigError, match="lists no training profiles for fold 4"):
        cross_validate(
            _forest(), field, _cv(), train_sites=listing[listing["fold"] < 4], progress=False
        )
    typo = pd.concat([listing, pd.DataFrame({"fold": [1], "site_id": ["nope"]})])
    with pytest.raises(
        ConfigError, match=r"not profiles with a target in the table, e.g. \['nope'\]"
    ):
        cross_validate(_forest(), field, _cv(), train_sites=typo, progress=False)
    repeats = pd.concat([listing.assign(repeat=0), listing.assign(repeat=1)])
    with pytest.raises(ConfigError, match="several values of 'repeat'"):
        cross_validate(_forest(), field, _cv(), train_sites=repeats, progress=False)


def test_read_train_sets(tmp_path):
    from socmap.errors import ConfigError, InputNotFound
    from socmap.validate import read_train_sets

    path = tmp_path / "sets.csv"
    path.write_text("fold,repeat,site_id\n0,0,007\n1,2,a\n")
    sets = read_train_sets(path)
    assert list(sets["site_id"]) == ["007", "a"] and list(sets["fold"]) == ["0", "1"]
    assert list(sets["repeat"]) == [0, 2]
    path.write_text("fold,site\n0,a\n")
    with pytest.raises(ConfigError, match=r"lacks the columns \['site_id'\]"):
        read_train_sets(path)
    path.write_text("fold,repeat,site_id\n0,first,a\n")
    with pytest.raises(ConfigError, match="repeat 'first'"):
        read_train_sets(path)
    with pytest.raises(InputNotFound, match=r"missing\.csv"):
        read_train_sets(tmp_path / "missing.csv")


def test_another_target_column(field):
    seen: list[pd.Series] = []

    class Spy(RegionalForest):
        def fit(self, X, y=None):
            seen.append(X.set_index(["site_id", "top_cm"])["soc_g_kg"])
            return super().fit(X, y)

    table = field.assign(clay=2.0 * field["soc_true_g_kg"], soc_g_kg=np.nan)
    res = cross_validate(Spy(BANDS, n_estimators=5, random_state=0), table, _cv(), target="clay",
                         progress=False)  # fmt: skip
    assert res.n_rows_without_target == 0 and len(res.oof) == len(table)
    np.testing.assert_array_equal(res.oof["obs_g_kg"], table["clay"])
    clay = table.set_index(["site_id", "top_cm"])["clay"]
    for fitted in seen:
        np.testing.assert_array_equal(fitted.to_numpy(), clay.loc[fitted.index].to_numpy())
    assert table["soc_g_kg"].isna().all()  # the caller's table is untouched
    with pytest.raises(ProfileValidationError, match="target column 'site_id' is not numeric"):
        cross_validate(_forest(), table, _cv(), target="site_id", progress=False)
