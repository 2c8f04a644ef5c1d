""":class:`DataRoles`: which dataset variables and attributes feed which part of a model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dmg.core.data._names import closest, duplicates
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.normalizer import TRANSFORMS, Normalizer
from dmg.core.errors import ConfigError


class DataRoles(BaseModel):
    """The role of each dataset variable and attribute in a run.

    Keys are the names the model uses; values are the names in the dataset, so a model's
    forcing ``P`` can read the dataset variable ``prcp``.

    Examples
    --------
    >>> roles = DataRoles(
    ...     forcings={"P": "prcp", "T": "tmean", "PET": "pet"},
    ...     nn_inputs=["prcp", "tmean", "pet"],
    ...     nn_static=["area", "slope"],
    ...     targets={"Q": "streamflow"},
    ...     transforms={"prcp": "sqrt"},
    ... )
    """

    model_config = ConfigDict(extra="forbid")

    forcings: dict[str, str] = Field(
        default_factory=dict, description="Physics forcing name -> dataset variable (fed raw, in physical units)."
    )
    nn_inputs: list[str] = Field(
        default_factory=list, description="Time-varying dataset variables fed (normalised) to the networks."
    )
    nn_static: list[str] = Field(
        default_factory=list, description="Dataset attributes fed (normalised) to the networks."
    )
    nn_static_in_sequence: bool = Field(
        True, description="Also repeat the static attributes along time and append them to the sequence input."
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Physics attribute name -> dataset attribute (fed raw, e.g. area)."
    )
    targets: dict[str, str] = Field(default_factory=dict, description="Model output name -> observed dataset variable.")
    attribute_statistics: Literal["training", "reference"] = Field(
        "training",
        description="Population the static attributes are z-scored over: 'training' (the training units) or "
        "'reference' (the dataset's reference population, e.g. every basin of CAMELS' attribute files, as the "
        "published models do; robust with few training units).",
    )
    transforms: dict[str, str] = Field(
        default_factory=dict,
        description=f"Normalizer transform per dataset variable/attribute, one of {list(TRANSFORMS)}; default 'none'.",
    )

    @field_validator("transforms")
    @classmethod
    def _known_transforms(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in value.items() if v not in TRANSFORMS}
        if bad:
            raise ValueError(f"unknown transform(s) {bad}; choose from {list(TRANSFORMS)}")
        return value

    @field_validator("nn_inputs", "nn_static")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = duplicates(value)
        if repeated:
            raise ValueError(f"names must be unique; repeated: {repeated}")
        return value

    # ----------------------------------------------------------------- sizes

    @property
    def n_sequence_features(self) -> int:
        """Width of ``Batch.nn_inputs``: time-varying inputs plus, if repeated along time, static ones."""
        return len(self.nn_inputs) + (len(self.nn_static) if self.nn_static_in_sequence else 0)

    @property
    def n_static_features(self) -> int:
        """Width of ``Batch.static_inputs``."""
        return len(self.nn_static)

    # ----------------------------------------------------------------- checks

    def check(self, dataset: ArrayDataset) -> None:
        """Check that every name refers to something in ``dataset``.

        Raises :class:`~dmg.core.errors.ConfigError` listing every problem, each naming the
        role key, the missing name, the closest available one and all available names.
        """
        variables, attributes = list(dataset.variables), list(dataset.attribute_names)
        problems: list[str] = []

        def need(key: str, name: str, available: list[str], kind: str) -> None:
            if name in available:
                return
            hint = closest(name, available)
            close = f" (closest: {hint!r})" if hint else ""
            problems.append(f"{key} names {kind} {name!r}, which the dataset does not have{close}")

        for key, name in self.forcings.items():
            need(f"forcings[{key!r}]", name, variables, "variable")
        for i, name in enumerate(self.nn_inputs):
            need(f"nn_inputs[{i}]", name, variables, "variable")
        for i, name in enumerate(self.nn_static):
            need(f"nn_static[{i}]", name, attributes, "attribute")
        for key, name in self.attributes.items():
            need(f"attributes[{key!r}]", name, attributes, "attribute")
        for key, name in self.targets.items():
            need(f"targets[{key!r}]", name, variables, "variable")
        for key in self.transforms:
            need(f"transforms[{key!r}]", key, variables + attributes, "variable or attribute")
        if problems:
            raise ConfigError(
                "data roles do not match the dataset:\n  - "
                + "\n  - ".join(problems)
                + f"\nDataset variables: {variables}\nDataset attributes: {attributes}"
            )

    def fit_normalizer(self, dataset: ArrayDataset, log_eps: float = 0.1) -> Normalizer:
        """A :class:`Normalizer` fitted on ``dataset`` (the training split) for the network inputs."""
        return Normalizer(self.transforms, log_eps=log_eps).fit(
            dataset, self.nn_inputs, self.nn_static, attribute_population=self.attribute_statistics
        )
