"""Lazy unit sources: an .npz dataset's units read as they are selected, and ``dmg simulate`` fed by them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from dmg.core import registry
from dmg.core.build import open_unit_source
from dmg.core.cli import main
from dmg.core.components import Component, ComponentConfig
from dmg.core.config import load_config
from dmg.core.data import ArrayDataset
from dmg.core.data.dataset import FORMAT_VERSION
from dmg.core.data.lazy import NpzUnitSource, open_npz
from dmg.core.data.sources import NpzDataset
from dmg.core.errors import ConfigError, InputError, ShapeError
from dmg.core.testing.datasets import assert_same_dataset
from dmg.core.workflows import simulate

N_UNITS = 9


def dataset(dtype: type = np.float64, reference: bool = True) -> ArrayDataset:
    """Nine units over 30 days whose every value tells its unit, date and variable."""
    rng = np.random.default_rng(3)
    dates = np.arange(np.datetime64("2001-03-01"), np.datetime64("2001-03-31"))
    data = rng.normal(size=(N_UNITS, dates.size, 3)).astype(dtype)
    data[2, 5, 1] = np.nan
    return ArrayDataset(
        data,
        ("P", "PET", "Q"),
        [f"g{i:02d}" for i in range(N_UNITS)],
        dates,
        rng.random((N_UNITS, 2)),
        ("area", "slope"),
        {"P": "mm/day", "area": "km2"},
        rng.random((20, 2)) if reference else None,
    )


@pytest.fixture
def saved(tmp_path) -> tuple[Path, ArrayDataset]:
    path = tmp_path / "units.npz"
    dataset().save(path)
    return path, ArrayDataset.load(path)


SELECTIONS = [
    pytest.param(["g03", "g04", "g05"], id="a run in file order"),
    pytest.param(["g07", "g01", "g04", "g02"], id="ids in another order"),
    pytest.param(["g00", "g01", "g05", "g06", "g08"], id="several runs"),
    pytest.param([f"g{i:02d}" for i in range(N_UNITS)], id="every unit"),
    pytest.param([8, -9, 3], id="positions, negative ones too"),
    pytest.param(np.arange(N_UNITS) % 3 == 0, id="a boolean mask"),
    pytest.param(np.array(["g02"]), id="a numpy array of ids"),
    pytest.param([], id="no unit"),
]


@pytest.mark.parametrize("selection", SELECTIONS)
def test_lazy_selection_equals_the_loaded_dataset(saved, selection):
    path, loaded = saved
    source = open_npz(path)
    assert isinstance(source, NpzUnitSource)
    assert source.unit_ids == loaded.unit_ids
    assert_same_dataset(source.select_units(selection), loaded.select_units(selection))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_datasets_without_reference_attributes(tmp_path, dtype):
    path = tmp_path / "f.npz"
    dataset(dtype, reference=False).save(path)
    source = open_npz(path)
    assert isinstance(source, NpzUnitSource)
    assert_same_dataset(source.select_units(["g05", "g00"]), ArrayDataset.load(path).select_units(["g05", "g00"]))


def test_only_the_rows_asked_for_are_read(saved, monkeypatch):
    path, loaded = saved
    source = open_npz(path)
    reads: list[int] = []
    real_open = Path.open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def seek(self, offset):
            return self.fh.seek(offset)

        def readinto(self, buffer):
            reads.append(len(buffer))
            return self.fh.readinto(buffer)

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Counting(real_open(self, *a, **k)))
    chunk = source.select_units(["g04", "g05", "g06", "g01"])
    row = loaded.n_time * len(loaded.variables) * loaded.data.dtype.itemsize
    assert sorted(reads) == [row, 3 * row]  # one read per run of consecutive units
    np.testing.assert_array_equal(chunk.data, loaded.select_units(["g04", "g05", "g06", "g01"]).data)


@pytest.mark.parametrize(
    ("selection", "error", "message"),
    [
        (["g01", "nope"], InputError, "nope"),
        ([N_UNITS], InputError, "out of range"),
        ([-N_UNITS - 1], InputError, "out of range"),
        (np.ones(3, dtype=bool), ShapeError, "boolean unit mask"),
        (["g01", "g01"], InputError, "unique"),
    ],
)
def test_invalid_selections_give_the_errors_of_the_loaded_dataset(saved, selection, error, message):
    path, loaded = saved
    with pytest.raises(error, match=message) as lazy:
        open_npz(path).select_units(selection)
    with pytest.raises(error) as eager:
        loaded.select_units(selection)
    assert str(lazy.value) == str(eager.value)


def test_a_compressed_file_is_loaded_whole(tmp_path):
    plain, packed = tmp_path / "plain.npz", tmp_path / "packed.npz"
    dataset().save(plain)
    with np.load(plain) as f:
        np.savez_compressed(packed, **{name: f[name] for name in f.files})
    source = open_npz(packed)
    assert isinstance(source, ArrayDataset)
    assert_same_dataset(source.select_units(["g03", "g01"]), ArrayDataset.load(plain).select_units(["g03", "g01"]))


def files_like(tmp_path: Path) -> dict[str, Path]:
    """Broken files: each must give the error ``ArrayDataset.load`` gives."""
    good = tmp_path / "good.npz"
    dataset().save(good)
    files = {}
    files["missing"] = tmp_path / "missing.npz"
    files["random"] = tmp_path / "random.npz"
    files["random"].write_bytes(np.random.default_rng(0).bytes(500))
    files["truncated"] = tmp_path / "truncated.npz"
    files["truncated"].write_bytes(good.read_bytes()[:3000])
    with np.load(good) as f:
        arrays = {name: f[name] for name in f.files}
    files["no units"] = tmp_path / "no_units.npz"
    np.savez(files["no units"], **{k: v for k, v in arrays.items() if k != "unit_ids"})
    files["wrong shape"] = tmp_path / "wrong_shape.npz"
    np.savez(files["wrong shape"], **{**arrays, "unit_ids": arrays["unit_ids"][:-1]})
    files["old format"] = tmp_path / "old.npz"
    np.savez(files["old format"], **{**arrays, "format_version": np.array(FORMAT_VERSION + 1)})
    files["integer data"] = tmp_path / "integer.npz"
    np.savez(files["integer data"], **{**arrays, "data": np.nan_to_num(arrays["data"]).astype(np.int32)})
    return files


def test_broken_files_give_the_errors_of_load(tmp_path):
    for what, path in files_like(tmp_path).items():
        try:
            expected = ArrayDataset.load(path)
        except InputError as exc:
            with pytest.raises(InputError) as lazy:
                open_npz(path)
            assert str(lazy.value) == str(exc), what
        else:  # a file load reads is opened too, and the two agree
            assert_same_dataset(_all(open_npz(path)), expected)


def _all(source) -> ArrayDataset:
    return source.select_units(list(source.unit_ids))


def test_the_file_is_read_where_numpy_wrote_the_array(saved):
    path, loaded = saved
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo("data.npy").compress_type == zipfile.ZIP_STORED
    assert_same_dataset(_all(open_npz(path)), loaded)


# --------------------------------------------------------------------------- open_unit_source


def run_config(path: Path, name: str = "npz") -> object:
    return load_config(
        {
            "data": {
                "dataset": {"name": name, "path": str(path)},
                "roles": {
                    "forcings": {"P": "P"},
                    "nn_inputs": ["P", "PET"],
                    "nn_static": ["area"],
                    "targets": {"Q": "Q"},
                },
            },
            "model": {"physics": {"name": "tiny_reservoir"}, "nn": {"name": "tiny_net"}},
        }
    )


class LoadedOnly(Component):
    """A dataset component with ``load()`` only."""

    class Config(ComponentConfig):
        path: str

    def __init__(self, config=None, /, **options) -> None:
        self.config = self.validate_config(config, options)

    def load(self) -> ArrayDataset:
        return ArrayDataset.load(self.config.path).select_units(["g04", "g02"])


class FirstUnits(NpzDataset):
    """An npz dataset whose ``load()`` keeps the first three units: the inherited ``open()`` would not."""

    def load(self) -> ArrayDataset:
        return super().load().select_units([0, 1, 2])


@pytest.fixture
def components(tiny_run):
    registry.register("dmg.datasets", "loaded_only", LoadedOnly)
    registry.register("dmg.datasets", "first_units", FirstUnits)
    yield
    registry.unregister("dmg.datasets", "loaded_only")
    registry.unregister("dmg.datasets", "first_units")


def test_open_unit_source_opens_an_npz_dataset_lazily(saved, components):
    path, loaded = saved
    source = open_unit_source(run_config(path))
    assert isinstance(source, NpzUnitSource)
    assert_same_dataset(source.select_units(["g06", "g00"]), loaded.select_units(["g06", "g00"]))


@pytest.mark.parametrize(("name", "units"), [("loaded_only", ("g04", "g02")), ("first_units", ("g00", "g01", "g02"))])
def test_open_unit_source_loads_a_component_without_its_own_open(saved, components, name, units):
    path, loaded = saved
    source = open_unit_source(run_config(path, name))
    assert isinstance(source, ArrayDataset)
    assert_same_dataset(source, loaded.select_units(list(units)))


def test_open_unit_source_checks_the_roles_and_names_the_missing_file(saved, components, tmp_path):
    path, _ = saved
    config = run_config(path)
    config.data.roles.nn_inputs = ["P", "rain"]
    with pytest.raises(ConfigError, match=r"nn_inputs\[1\] names variable 'rain'"):
        open_unit_source(config)
    with pytest.raises(InputError, match=r"data\.dataset\.path: dataset file .*absent\.npz does not exist"):
        open_unit_source(run_config(tmp_path / "absent.npz"))


# --------------------------------------------------------------------------- dmg simulate


@pytest.fixture(scope="module")
def trained(tiny_run) -> Path:
    """A tiny run trained on its npz dataset."""
    folder = tiny_run.folder / "runs" / "lazy"
    assert (
        main(["train", tiny_run.write(tiny_run.config(), "lazy.yaml"), "--run-dir", str(folder), "--no-evaluate"]) == 0
    )
    return folder


def _predictions(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def test_simulate_through_the_lazy_source_equals_the_loaded_dataset(trained, monkeypatch):
    opened: list[Path] = []
    real = NpzDataset.open

    def counted(self):
        opened.append(self.path)
        return real(self)

    monkeypatch.setattr(NpzDataset, "open", counted)
    lazy = simulate(trained, "2000-02-01", None, units=["u2", "u0", "u1"], name="lazy", chunk_units=2)
    assert opened, "the npz dataset was not opened lazily"
    monkeypatch.delattr(NpzDataset, "open")
    eager = simulate(trained, "2000-02-01", None, units=["u2", "u0", "u1"], name="eager", chunk_units=2)
    a, b = _predictions(lazy), _predictions(eager)
    assert sorted(a) == sorted(b) and list(a["unit_ids"]) == ["u2", "u0", "u1"]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_simulate_names_an_unknown_unit(trained):
    with pytest.raises(InputError, match="--units: the dataset has no unit nowhere"):
        simulate(trained, "2000-02-01", None, units=["u1", "nowhere"], name="unknown")


def test_a_lazy_simulation_of_every_unit_keeps_the_order_of_the_file(trained):
    path = simulate(trained, None, None, name="whole", chunk_units=2)
    assert list(_predictions(path)["unit_ids"]) == ["u0", "u1", "u2"]
    assert not (trained / "simulations" / "whole.partial").exists()
