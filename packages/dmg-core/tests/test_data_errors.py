"""Bad data: damaged dataset files, transforms that do not fit the data, periods past the data,
forcings the model does not read. Each is a DmgError (or a DataWarning) naming what is at fault."""

from __future__ import annotations

import io
import re
import warnings
import zipfile

import numpy as np
import pytest

from dmg.core import registry
from dmg.core.build import build_model
from dmg.core.cli import main
from dmg.core.config import load_config
from dmg.core.data import ArrayDataset, Normalizer
from dmg.core.data.splits import split_time
from dmg.core.errors import ConfigError, InputError
from dmg.core.testing.models import ToyScaling

# --------------------------------------------------------------------------- dataset files


def _npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not arrays")
    return buffer.getvalue()


def _npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3.0))
    return buffer.getvalue()


DAMAGED = {
    "random bytes": (lambda good: np.random.default_rng(1).bytes(4096), r"is not an \.npz file"),
    "empty": (lambda good: b"", r"is not an \.npz file"),
    "truncated": (lambda good: good[: len(good) // 2], r"is not a readable ArrayDataset \.npz file"),
    "garbled": (
        lambda good: good[:1500] + bytes(200) + good[1700:],
        r"is not a readable ArrayDataset \.npz file \(Bad CRC",
    ),
    "zip of text": (lambda good: _zip_of_text(), r"is a zip archive without the arrays of ArrayDataset\.save"),
    "npy": (lambda good: _npy(), r"is a single \.npy array"),
    "arrays missing": (
        lambda good: _npz(format_version=np.array(1), data=np.zeros((1, 2, 1))),
        r"lacks the arrays \['variables', 'unit_ids'",
    ),
    "text attributes": (
        lambda good: _npz(**{**dict(np.load(io.BytesIO(good))), "attributes": np.array([["a"], ["b"], ["c"]])}),
        r"holds an invalid dataset: dataset attributes must be numeric",
    ),
    "repeated unit ids": (
        lambda good: _npz(**{**dict(np.load(io.BytesIO(good))), "unit_ids": np.array(["u0", "u0", "u1"])}),
        r"holds an invalid dataset: unit ids must be unique; repeated: 'u0'",
    ),
    "units not JSON": (
        lambda good: _npz(**{**dict(np.load(io.BytesIO(good))), "units": np.array("{oops")}),
        r"units must be a JSON mapping",
    ),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_dataset_files_name_the_file(tiny_run, tmp_path, kind):
    damage, message = DAMAGED[kind]
    path = tmp_path / "damaged.npz"
    path.write_bytes(damage(tiny_run.dataset_path.read_bytes()))
    with pytest.raises(InputError, match=rf"dataset file '{re.escape(str(path))}'.*{message}"):
        ArrayDataset.load(path)


def test_damaged_dataset_file_through_the_cli(tiny_run, capsys):
    damaged = tiny_run.folder / "damaged.npz"
    damaged.write_bytes(tiny_run.dataset_path.read_bytes()[:1000])
    config = tiny_run.config()
    config["data"]["dataset"]["path"] = str(damaged)
    assert main(["validate", tiny_run.write(config, "damaged.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset file") and "damaged.npz" in err and err.count("\n") == 1


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("transform", ["log", "log1p", "sqrt"])
def test_skew_transform_of_negative_values_is_refused(tiny_run, transform):
    dataset = ArrayDataset.load(tiny_run.dataset_path)
    lowest = float(np.nanmin(dataset.variable("T")))
    message = (
        rf"data\.roles\.transforms\.T: transform '{transform}' is for values >= 0, but variable 'T' goes down to "
        rf"{lowest:.6g}.*use 'none'"
    )
    with pytest.raises(ConfigError, match=message):
        Normalizer({"T": transform}).fit(dataset, ["T"])
    with pytest.raises(ConfigError, match=r"data\.roles\.transforms\.slope: .* attribute 'slope' goes down to -1"):
        Normalizer({"slope": transform}).fit(dataset, (), ["slope"])


def test_skew_transform_of_negative_values_through_the_cli(tiny_run, capsys):
    config = tiny_run.config()
    config["data"]["roles"]["nn_inputs"] = ["P", "T"]
    config["data"]["roles"]["transforms"] = {"T": "log"}
    assert main(["validate", tiny_run.write(config, "log_t.yaml")]) == 2
    assert capsys.readouterr().err.startswith("error: data.roles.transforms.T: transform 'log'")


def test_skew_transforms_of_non_negative_values_still_fit(tiny_run):
    dataset = ArrayDataset.load(tiny_run.dataset_path)
    norm = Normalizer({"P": "log", "wetness": "sqrt"}).fit(dataset, ["P"], ["wetness"])
    assert norm.variable_stats["P"].transform == "log"


# --------------------------------------------------------------------------- periods past the data


def test_a_period_past_the_data_is_cut_with_a_warning(tiny_run):
    from dmg.core.errors import DataWarning

    dataset = ArrayDataset.load(tiny_run.dataset_path)
    message = (
        r"the period 1999-12-01 to 2000-06-30 reaches past the data \(2000-01-01 to 2000-04-29\); "
        r"using 2000-01-01 to 2000-04-29"
    )
    with pytest.warns(DataWarning, match=message):
        assert dataset.time_slice("1999-12-01", "2000-06-30") == slice(0, dataset.n_time)
    with pytest.warns(DataWarning, match=r"2000-04-01 to 2000-05-31 reaches past .*using 2000-04-01 to 2000-04-29"):
        data, warmup = split_time(dataset, "2000-04-01", "2000-05-31", 10)
    assert (warmup, data.n_time) == (10, 39)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dataset.time_slice("2000-01-01", "2000-04-29")  # exactly the data: no warning
        dataset.time_slice(None, None)
    with pytest.raises(InputError, match=r"no dates between 2001-01-01 and 2001-12-31 \(dataset covers 2000-01-01 to"):
        dataset.time_slice("2001-01-01", "2001-12-31")


def test_a_period_past_hourly_data_is_cut_at_its_own_resolution():
    from dmg.core.errors import DataWarning

    dates = np.arange(np.datetime64("2000-01-01T00"), np.datetime64("2000-01-03T00"))
    hourly = ArrayDataset.from_dicts({"x": np.zeros((1, dates.size))}, ["u"], dates)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert hourly.time_slice("2000-01-01", "2000-01-02") == slice(0, 48)
    with pytest.warns(DataWarning, match=r"using 2000-01-02T00 to 2000-01-02T23"):
        hourly.time_slice("2000-01-02", "2000-01-05")


# --------------------------------------------------------------------------- forcings


def test_a_forcing_the_model_does_not_read_is_refused(tiny_run, capsys):
    config = tiny_run.config()
    config["data"]["roles"]["forcings"]["PTE"] = "T"
    with pytest.raises(ConfigError, match=r"data\.roles\.forcings\.PTE: .*no forcing named 'PTE' \(did you mean 'PET'"):
        build_model(load_config(config))
    assert main(["validate", tiny_run.write(config, "extra_forcing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.roles.forcings.PTE:") and "it reads ['P', 'PET']" in err


@pytest.fixture
def scaling():
    registry.register("dmg.physics", "tiny_scaling", ToyScaling)
    yield
    registry.unregister("dmg.physics", "tiny_scaling")


def test_a_chain_reads_its_members_forcings_less_those_it_computes(tiny_run, scaling):
    config = tiny_run.config()
    config["model"]["physics"] = {
        "name": "chain",
        "members": {"runoff": {"name": "tiny_reservoir"}, "routing": {"name": "tiny_scaling"}},
    }
    config["data"]["roles"]["targets"] = {"Qout": "Q"}
    config["model"]["couplings"] = [{"name": "parameter_learning"}]
    assert build_model(load_config(config)).phy_model.forcing_names == ("P", "PET")
    config["data"]["roles"]["forcings"]["Q"] = "Q"
    with pytest.raises(ConfigError, match=r"data\.roles\.forcings\.Q: the physics model has no forcing named 'Q'"):
        build_model(load_config(config))
