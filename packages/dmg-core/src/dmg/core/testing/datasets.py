"""Checks for dataset components: two :class:`~dmg.core.data.ArrayDataset` hold the same data.

A component with a lazy ``open()`` (:mod:`dmg.core.data.lazy`) must give, for any selection of
units, what its ``load()`` gives::

    assert_same_dataset(component.open().select_units(ids), component.load().select_units(ids))
"""

from __future__ import annotations

import numpy as np

from dmg.core.data.dataset import ArrayDataset

__all__ = ["assert_same_dataset"]


def assert_same_dataset(actual: ArrayDataset, expected: ArrayDataset) -> None:
    """Raise ``AssertionError`` unless values, dtypes, names, ids, dates, attributes, physical units and
    reference attributes are equal (NaN equal to NaN)."""
    assert actual.data.dtype == expected.data.dtype, f"values: {actual.data.dtype} != {expected.data.dtype}"
    np.testing.assert_array_equal(actual.data, expected.data, err_msg="values")
    for name in ("variables", "unit_ids", "attribute_names", "units"):
        assert getattr(actual, name) == getattr(expected, name), (
            f"{name}: {getattr(actual, name)} != {getattr(expected, name)}"
        )
    assert actual.dates.dtype == expected.dates.dtype, f"dates: {actual.dates.dtype} != {expected.dates.dtype}"
    np.testing.assert_array_equal(actual.dates, expected.dates, err_msg="dates")
    assert actual.attributes.dtype == expected.attributes.dtype, "attributes: dtypes differ"
    np.testing.assert_array_equal(actual.attributes, expected.attributes, err_msg="attributes")
    if expected.reference_attributes is None:
        assert actual.reference_attributes is None, "reference attributes: expected none"
    else:
        assert actual.reference_attributes is not None, "reference attributes: missing"
        np.testing.assert_array_equal(actual.reference_attributes, expected.reference_attributes)
