"""The run configuration: pydantic models loaded from YAML, with dotted overrides.

A run is described by one YAML file (see ``docs/configuration.md`` for every key)::

    seed: 0
    data:
      dataset: {name: npz, path: data/basins.npz}
      roles: {forcings: {P: prcp, PET: pet}, nn_inputs: [prcp, pet], targets: {Q: streamflow}}
      warmup: 365
      train: {start: 2000-01-01, end: 2005-12-31}
      test: {start: 2006-01-01, end: 2010-12-31}
    model:
      physics: {name: hbv, nmul: 16, dynamic: [BETA]}
      nn: {name: lstm, hidden_size: 256}
      couplings: [{name: parameter_learning}]
    engine: {backend: {name: eager}, memory: store}
    train: {epochs: 50, batch_size: 100, window: 365, optimizer: {name: adam, lr: 0.001}}

Every section forbids unknown keys.  Registered components (``physics``, ``nn``, ``dataset``,
``loss``, couplings, the engine ``backend``) are named by ``name`` and validated against that
component's own ``Config`` model, so the schema of everything installed is generated from code (:func:`json_schema`).
"""

from __future__ import annotations

import datetime as dt
import inspect
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dmg.core import registry
from dmg.core.components import SCALAR_TYPE_ERRORS, ComponentConfig, OptionsModel, options_with_role
from dmg.core.data.roles import DataRoles
from dmg.core.errors import ConfigError, RegistryError

# --------------------------------------------------------------------------- components


class ComponentRef(BaseModel):
    """A registered component: ``name`` plus the options of that component's ``Config``."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Registered name of the component (see `dmg list`).")

    @property
    def options(self) -> dict[str, Any]:
        """The options besides ``name``."""
        return dict(self.model_extra or {})


def _config_class(component: Any) -> type[BaseModel]:
    base = getattr(component, "Config", None)
    return base if is_model_class(base) else ComponentConfig


def component_model(group: str, name: str) -> type[BaseModel]:
    """The pydantic model of component ``name`` of ``group``: ``name`` plus its ``Config`` fields."""
    base = _config_class(registry.get(group, name))
    return create_model(
        f"{base.__name__}_{name}",
        __base__=base,
        name=(Literal[name], Field(description="Registered name of the component.")),
    )


def resolve_component(group: str, ref: ComponentRef | Mapping[str, Any], path: str) -> tuple[Any, BaseModel]:
    """Load the component ``ref`` names and validate its options; errors name ``path``.

    Returns the component and an instance of its own ``Config`` (without ``name``).
    """
    data = ref.model_dump() if isinstance(ref, BaseModel) else dict(ref)
    try:
        model = component_model(group, data.get("name", ""))
    except RegistryError as exc:
        raise ConfigError(f"{path}.name: {exc}") from None
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, model, prefix=path) from None
    component = registry.get(group, data["name"])
    options = {k: getattr(validated, k) for k in _config_class(component).model_fields}
    return component, _config_class(component).model_construct(**options)


# --------------------------------------------------------------------------- sections

GENERIC_METRICS = ("rmse", "mae", "bias", "correlation")
"""Metrics ``dmg evaluate`` reports when neither the config nor the dataset names any."""


class Section(OptionsModel):
    """Base of config sections: unknown keys are errors, numbers are finite, a boolean is no number."""


class Period(Section):
    """A period of time, both ends inclusive; ``null`` ends mean the first/last date of the data."""

    start: dt.date | None = Field(None, description="First date of the period (YYYY-MM-DD).")
    end: dt.date | None = Field(None, description="Last date of the period (YYYY-MM-DD).")

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class UnitSplit(Section):
    """Which units train and which are tested (spatial hold-out)."""

    kind: Literal["all", "kfold", "holdout", "lists"] = Field(
        "all",
        description="'all': every unit in every split; 'kfold'/'holdout': test on held-out units; "
        "'lists': explicit unit ids.",
    )
    n_folds: int = Field(5, ge=2, description="Folds for kind 'kfold'.")
    fold: int = Field(0, ge=0, description="Which fold is tested, for kind 'kfold'.")
    fraction: float = Field(0.2, gt=0, lt=1, description="Share of units held out, for kind 'holdout'.")
    seed: int = Field(0, description="Seed of the unit shuffle.")
    train: list[str] = Field(default_factory=list, description="Training unit ids, for kind 'lists'.")
    test: list[str] = Field(default_factory=list, description="Test unit ids, for kind 'lists'.")


class DataConfig(Section):
    """Where the data come from and how they are split and used."""

    dataset: ComponentRef = Field(description="Registered dataset (`dmg list datasets`) and its options.")
    roles: DataRoles = Field(description="Which variables feed the physics, the networks and the loss.")
    warmup: int = Field(365, ge=0, description="Steps before each window or period used to spin up states.")
    window_alignment: Literal["step", "day"] = Field(
        "step",
        description="Where training windows (warm-up included) start: 'step': at any step; 'day': at 00:00, so that "
        "a model aggregating sub-daily steps into days sees calendar days (the warm-up must then be whole days).",
    )
    train: Period = Field(default_factory=Period, description="Training period.")
    valid: Period | None = Field(None, description="Validation period (early stopping); none: no validation.")
    test: Period = Field(default_factory=Period, description="Test period used by `dmg evaluate`.")
    units: UnitSplit = Field(default_factory=UnitSplit, description="Spatial split of units.")


class ModelConfig(Section):
    """The differentiable model: physics, networks and how they couple."""

    physics: ComponentRef = Field(description="Registered physics model (`dmg list physics`) and its options.")
    nn: ComponentRef | dict[str, ComponentRef] = Field(
        description="One network (named 'default') or a mapping name -> network."
    )
    couplings: list[ComponentRef] = Field(
        default_factory=lambda: [ComponentRef(name="parameter_learning")],
        description="Registered couplings (`dmg list couplings`) and their options, applied in order.",
    )
    dtype: Literal["float32", "float64"] = Field("float32", description="Floating-point precision.")

    @property
    def networks(self) -> dict[str, ComponentRef]:
        """The networks by name."""
        return {"default": self.nn} if isinstance(self.nn, ComponentRef) else dict(self.nn)


class EngineConfig(Section):
    """How physics models are run: the loop backend, the memory policy of backward, input checks."""

    backend: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="eager"),
        description="Registered engine backend (`dmg list backends`) and its options.",
    )
    memory: Literal["store", "recompute"] = Field(
        "store",
        description="'store': keep the whole graph for backward (fastest); 'recompute': recompute chunks of "
        "chunk_size steps in backward (less memory, identical results).",
    )
    chunk_size: int = Field(64, ge=1, description="Steps per recomputed chunk, for memory 'recompute'.")
    check_inputs: Literal["auto", "always", "shapes"] = Field(
        "auto",
        description="Check input values for NaN/inf: 'always', 'shapes' (names and shapes only) or 'auto' "
        "(values on the CPU, where it needs no device synchronisation).",
    )


class OptimizerConfig(Section):
    name: Literal["adam", "adamw", "sgd", "rmsprop", "adadelta"] = Field("adam", description="torch.optim optimizer.")
    lr: float = Field(1e-3, gt=0, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="L2 penalty / decoupled weight decay.")
    options: dict[str, Any] = Field(default_factory=dict, description="Further keyword arguments of the optimizer.")

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from dmg.core.training import OPTIMIZERS  # the training layer sits above the config

        name = info.data.get("name")
        if name not in OPTIMIZERS:
            return options
        factory = OPTIMIZERS[name]
        check_keywords(f"optimizer {name!r}", factory, options, fields=("lr", "weight_decay"))
        if "lr" in info.data and "weight_decay" in info.data:
            weight = _probe_parameter()
            kwargs = {"lr": info.data["lr"], "weight_decay": info.data["weight_decay"], **options}
            try_build(f"optimizer {name!r}", lambda: factory([weight], **kwargs))
        return options


class SchedulerConfig(Section):
    name: Literal["none", "step", "cosine", "exponential", "plateau"] = Field(
        "none", description="Learning-rate schedule, stepped once per epoch ('plateau' on the validation loss)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments of the torch scheduler (e.g. step_size, gamma)."
    )

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from dmg.core.training import SCHEDULERS  # the training layer sits above the config

        name = info.data.get("name")
        if name not in SCHEDULERS:
            return options
        factory = SCHEDULERS[name]
        check_keywords(f"scheduler {name!r}", factory, options)
        placeholders = dict.fromkeys(_required_keywords(factory), 1)  # filled by the trainer (e.g. T_max)

        def build() -> Any:
            import torch

            optimizer = torch.optim.SGD([_probe_parameter()], lr=0.1)
            return factory(optimizer, **{**placeholders, **options})

        try_build(f"scheduler {name!r}", build)
        return options


def _keyword_parameters(factory: Callable[..., Any]) -> list[inspect.Parameter]:
    """Parameters of a torch optimizer or scheduler after the first (the parameters or the optimizer)."""
    return list(inspect.signature(factory).parameters.values())[1:]


def _required_keywords(factory: Callable[..., Any]) -> list[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in _keyword_parameters(factory) if p.kind in kinds and p.default is inspect.Parameter.empty]


def check_keywords(
    what: str, factory: Callable[..., Any], options: Mapping[str, Any], fields: Sequence[str] = ()
) -> None:
    """Refuse ``options`` that ``factory`` does not take as keywords, or that repeat the config ``fields``.

    Raises
    ------
    pydantic_core.PydanticCustomError
        Naming the option, the closest valid one and every valid one.
    """
    parameters = _keyword_parameters(factory)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    valid = sorted(p.name for p in parameters if p.kind in kinds and p.name not in fields)
    for key in options:
        if key in fields:
            raise _custom("duplicate_option", f"{key!r} is a key of its own next to options: set it there, not here")
        if key not in valid:
            close = get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            listed = ", ".join(valid)
            raise _custom("unknown_option", f"unknown option {key!r} of {what}{hint} (valid options: {listed})")


def _custom(kind: str, message: str) -> PydanticCustomError:
    """A pydantic error of type ``kind`` whose message is ``message`` as it is (no template)."""
    return PydanticCustomError(kind, "{message}", {"message": message})


def _probe_parameter() -> Any:
    import torch

    return torch.zeros(1, requires_grad=True)


def try_build(what: str, build: Callable[[], Any]) -> None:
    """Build a throw-away optimizer or scheduler so that option values torch refuses fail at validation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            build()
        except Exception as exc:  # torch raises TypeError, ValueError, IndexError... on bad values
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _custom("invalid_option_value", f"{what} refuses these options: {reason}") from None


class EarlyStoppingConfig(Section):
    patience: int | None = Field(None, ge=1, description="Epochs without improvement before stopping; none: off.")
    min_delta: float = Field(0.0, ge=0, description="Smallest improvement of the validation loss that counts.")


class TrainConfig(Section):
    """Optimisation."""

    epochs: int = Field(10, ge=1, description="Number of epochs.")
    seeds: list[int] | None = Field(
        None,
        description="Train one member per seed (in members/seed_<s>/ of the run folder) and evaluate their mean "
        "prediction, with each member's metrics; none: one model with the run's seed.",
    )

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and (not seeds or len(set(seeds)) != len(seeds)):
            raise ValueError(f"give distinct seeds, at least one (got {seeds})")
        return seeds

    batch_size: int = Field(64, ge=1, description="Units per minibatch.")
    window: int = Field(365, ge=1, description="Steps per training window after warm-up.")
    iterations_per_epoch: int | None = Field(
        None, ge=1, description="Minibatches per epoch (default: each unit's training period seen about once)."
    )
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    loss: ComponentRef = Field(
        default_factory=lambda: ComponentRef(name="mse"), description="Registered loss (`dmg list losses`)."
    )
    grad_clip: float | None = Field(1.0, gt=0, description="Clip the gradient norm to this value; none: off.")
    max_nonfinite: int = Field(
        20, ge=1, description="Stop after this many consecutive minibatches with a non-finite loss."
    )
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    checkpoint_every: int | None = Field(
        None,
        ge=1,
        description="Also write the last checkpoint every this many minibatches within an epoch "
        "(for long epochs); none: at the end of each epoch only.",
    )
    progress: bool = Field(True, description="Show a progress bar.")


class SearchRange(Section):
    """The values ``dmg tune`` tries for one config key: a numeric range or a list of choices."""

    low: int | float | None = Field(None, description="Smallest value (with high); integers when low and high are.")
    high: int | float | None = Field(None, description="Largest value (with low).")
    log: bool = Field(False, description="Draw on a log scale (low > 0).")
    step: int | float | None = Field(None, gt=0, description="Spacing of the values (none: continuous).")
    choices: list[Any] | None = Field(None, description="The values to choose from (instead of low/high).")

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None or not self.choices:
                raise ValueError("give either choices (a non-empty list) or low and high, not both")
            return self
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"give low < high (got low={self.low}, high={self.high}) or a list of choices")
        if self.log and self.low <= 0:
            raise ValueError(f"a log scale needs low > 0, got {self.low}")
        return self

    @property
    def is_integer(self) -> bool:
        """Whether the values are integers: low and high (and step, if given) are written as integers."""
        return all(isinstance(v, int) for v in (self.low, self.high)) and (
            self.step is None or isinstance(self.step, int)
        )


class TuneConfig(Section):
    """The hyper-parameter search of ``dmg tune``: which keys vary, how, and how trials are pruned."""

    space: dict[str, SearchRange] = Field(
        default_factory=dict,
        description="Dotted config key -> its range or choices, e.g. {'train.optimizer.lr': {low: 1e-4, "
        "high: 1e-2, log: true}, 'model.nn.dropout': {choices: [0.0, 0.5]}}.",
    )
    trials: int = Field(20, ge=1, description="Trials in the study (finished and pruned ones count); --trials.")
    pruner: Literal["median", "none"] = Field(
        "median", description="Stop a trial whose validation loss is worse than the median of earlier trials."
    )
    warmup_epochs: int = Field(2, ge=0, description="Epochs every trial runs before it may be pruned.")
    seed: int | None = Field(None, description="Seed of the search (default: the run's seed).")


class EvaluateConfig(Section):
    metrics: list[str] | None = Field(
        None,
        description="Registered metrics (`dmg list metrics`); default: those the dataset recommends, else "
        f"{list(GENERIC_METRICS)}.",
    )
    units_per_batch: int = Field(256, ge=1, description="Units simulated at once.")
    checkpoint: Literal["best", "last"] = Field("best", description="Which checkpoint to evaluate.")
    plots: bool = Field(
        True,
        description="Write plots to the run folder (needs matplotlib: the plots extra, dmg-core[plots]; "
        "without it they are skipped with one warning).",
    )
    plot_units: int = Field(12, ge=0, description="Units whose series are plotted (the first ones).")


class OutputConfig(Section):
    root: Path = Field(
        Path("runs"),
        description="Folder in which run folders are created (default: runs/ in the working directory; relative: "
        "to the config file's folder, or to the working directory on the command line).",
    )
    name: str | None = Field(None, description="Run folder name (default: a timestamp).")
    predictions: Literal["auto", "netcdf", "npz"] = Field(
        "auto", description="Prediction file format; 'auto': NetCDF when xarray is installed, else npz."
    )


class SimulateConfig(Section):
    """How `dmg simulate` runs a domain: units in chunks, written as they finish (docs/operations.md)."""

    chunk_units: int = Field(
        1024,
        ge=1,
        description="Units simulated and written at a time (--chunk-units); memory grows with it, not with the "
        "domain: about chunk_units x steps x (inputs + outputs) x 4 bytes.",
    )
    format: Literal["auto", "netcdf", "zarr", "npz"] = Field(
        "auto",
        description="Predictions file of `dmg simulate`; 'auto': output.predictions. 'netcdf' and 'zarr' are "
        "written one chunk at a time (zarr: the zarr extra, dmg-core[zarr]); 'npz' is assembled in memory.",
    )
    outputs: list[str] | None = Field(
        None,
        min_length=1,
        description="Model outputs written by `dmg simulate`, e.g. [Q]; default: every [time, unit] output of the "
        "model. Fewer outputs make smaller files on a large domain.",
    )
    parameters: Literal["causal", "window"] = Field(
        "causal",
        description="'causal': the model steps forward as through the BMI, static parameters set by the networks at "
        "the end of the warm-up and held (outputs up to a date do not depend on later inputs; --save-state and "
        "--from-state need it); 'window': the period is one window, static parameters from its last step, as in "
        "training and `dmg evaluate`.",
    )


class RunConfig(Section):
    """One run: data, model, training, evaluation and output."""

    seed: int = Field(0, description="Seed of every random number generator.")
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:N' or 'auto'.")
    data: DataConfig
    model: ModelConfig
    engine: EngineConfig = Field(default_factory=EngineConfig, description="How physics models are run.")
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    simulate: SimulateConfig = Field(default_factory=SimulateConfig, description="How `dmg simulate` runs a domain.")
    tune: TuneConfig | None = Field(None, description="Hyper-parameter search of `dmg tune` (ignored by train).")
    _path_notes: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _has_targets(self) -> RunConfig:
        if not self.data.roles.targets:
            raise ValueError(
                "data.roles.targets is empty: name at least one model output -> observed variable "
                "(e.g. targets: {Q: streamflow})"
            )
        return self


def make_period(start: Any, end: Any, where: str) -> Period:
    """A :class:`Period` from dates a user typed (e.g. ``dmg simulate --start/--end``).

    Parameters
    ----------
    start, end
        ``YYYY-MM-DD`` text, dates or ``None`` (the data's first/last date).
    where
        What the dates come from, named in errors (e.g. ``"simulate --start/--end"``).

    Raises
    ------
    ConfigError
        Naming ``where``, the date at fault and why (not a date, or ``end`` before ``start``).
    """
    try:
        return Period(start=start, end=end)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["ctx"]["field"]) if err["type"] in SCALAR_TYPE_ERRORS else ".".join(map(str, err["loc"]))
            if field:
                value = start if field == "start" else end
                why = err["msg"].removeprefix(f"{field}: ")
                problems.append(f"{field} {value!r} is not a date ({why}); write YYYY-MM-DD")
            else:
                problems.append(err["msg"].removeprefix("Value error, "))
        raise ConfigError(f"{where}: {'; '.join(problems)}") from None


# --------------------------------------------------------------------------- loading


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Sequence[str] = (),
) -> RunConfig:
    """Load and validate a run config from a YAML file or a mapping, after ``key.path=value`` overrides.

    Relative paths are resolved by :data:`PATH_RULE`: from the YAML file's folder when written in it,
    from the working directory when given in ``overrides`` (or in a mapping). Every registered
    component named in the config is validated against its own ``Config``.
    """
    where = ""
    base = Path.cwd()
    if isinstance(source, Mapping):
        data = _deep_copy(source)
    else:
        path = Path(source)
        where = f" in {path}"
        data = parse_yaml(read_config_text(path), f"config file {path}")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
        base = path.resolve().parent
    in_file = _given_keys(data)
    for item in overrides:
        apply_override(data, item)
    check_moved_keys(data, where)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, RunConfig, where=where) from None
    check_components(config, where)
    from_command_line = {item.split("=", 1)[0].strip() for item in overrides}
    resolve_paths(config, None if isinstance(source, Mapping) else base, from_command_line, in_file)
    check_output_root(config.output.root, where)
    return config


def read_config_text(path: Path) -> str:
    """The text of config file ``path``; a folder, a missing file or bytes that are not UTF-8 are errors."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; give the YAML file of a run")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}), "
            "so it is not a YAML config"
        ) from None


class DuplicateKeyError(yaml.YAMLError):
    """A key appears twice in one YAML mapping."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(f"line {line}: key {key!r} appears twice in one mapping (first on line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe YAML loader, refusing a key repeated in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: later keys override merged ones
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, line, seen[key])
                seen[key] = line
            except TypeError:  # an unhashable key: the base loader reports it
                continue
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """A date or time, or its text when it is no valid date (``2015-13-45``), for validation to name."""
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", UniqueKeyLoader.construct_yaml_timestamp)


def parse_yaml(text: str, source: str) -> Any:
    """``text`` read as YAML with :class:`UniqueKeyLoader`; errors are one line naming ``source``."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError(f"{source}, {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = " ".join(str(exc.problem or exc.context or "").split())
        raise ConfigError(f"{source} is not valid YAML: {at}{what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise ConfigError(f"{source} is not valid YAML: nested too deeply") from None


def check_output_root(root: Path, where: str = "") -> None:
    """Refuse an ``output.root`` that is, or lies inside, an existing file."""
    for folder in (root, *root.parents):
        if folder.exists():
            if not folder.is_dir():
                inside = "" if folder == root else f" (inside {folder}, which is a file)"
                raise ConfigError(
                    f"output.root{where}: {root} is not a folder{inside}; "
                    "name a folder in which run folders are created"
                )
            return


def check_components(config: RunConfig, where: str = "") -> None:
    """Validate every registered component named in ``config`` against its own ``Config``."""
    try:
        resolve_component("dmg.datasets", config.data.dataset, "data.dataset")
        resolve_component("dmg.physics", config.model.physics, "model.physics")
        for name, ref in config.model.networks.items():
            path = "model.nn" if isinstance(config.model.nn, ComponentRef) else f"model.nn.{name}"
            resolve_component("dmg.nn", ref, path)
        resolve_component("dmg.losses", config.train.loss, "train.loss")
        resolve_component("dmg.backends", config.engine.backend, "engine.backend")
        known = registry.entries("dmg.metrics")
        for metric in config.evaluate.metrics or ():
            if metric not in known:
                close = get_close_matches(metric, list(known), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"evaluate.metrics: unknown metric {metric!r}.{hint} Known: {', '.join(known)}")
        names = set(config.model.networks)
        for i, ref in enumerate(config.model.couplings):
            _, options = resolve_component("dmg.couplings", ref, f"model.couplings.{i}")
            network = getattr(options, "network", None)
            if network is not None and network not in names:
                raise ConfigError(
                    f"model.couplings.{i}.network: no network named {network!r}; networks: {sorted(names)}"
                )
    except ConfigError as exc:
        raise ConfigError(f"{exc}{where}") from None


MOVED_KEYS: tuple[tuple[str, str], ...] = (
    (
        "backend",
        "the engine backend is chosen per run now, not per physics model: remove it here and write "
        "`engine: {backend: {name: <backend>}}` at the top level of the config",
    ),
    (
        "backend_options",
        "engine options are set per run now: remove them here and write them under `engine:` at the top level, "
        "e.g. `engine: {memory: recompute, chunk_size: 32}` for what the 'checkpoint' backend did",
    ),
)
"""Options that moved out of physics models, with what to write instead."""


def check_moved_keys(data: Mapping[str, Any], where: str = "") -> None:
    """Raise a :class:`ConfigError` saying what to write instead for keys of older configs."""
    model = data.get("model") if isinstance(data, Mapping) else None
    if not isinstance(model, Mapping):
        return

    def physics(node: Any, path: str) -> None:
        if not isinstance(node, Mapping):
            return
        for key, advice in MOVED_KEYS:
            if key in node:
                raise ConfigError(f"{path}.{key}: {advice}{where}")
        members = node.get("members")
        if isinstance(members, Mapping):
            for name, member in members.items():
                physics(member, f"{path}.members.{name}")

    physics(model.get("physics"), "model.physics")
    couplings = model.get("couplings")
    if isinstance(couplings, list):
        for i, coupling in enumerate(couplings):
            if isinstance(coupling, Mapping) and "kind" in coupling and "name" not in coupling:
                raise ConfigError(
                    f"model.couplings.{i}.kind: couplings are registered components now, named like every other "
                    f"component: write `name: {coupling['kind']}` instead of `kind: {coupling['kind']}`{where}"
                )


PATH_RULE = (
    "a relative path written in a config file is read from that file's folder; one given on the command line "
    "(--set) from the working directory"
)


def component_refs(config: RunConfig) -> list[tuple[str, str, ComponentRef]]:
    """``(key, group, ref)`` of every registered component a config names, e.g. ``("data.dataset", ...)``."""
    refs = [
        ("data.dataset", "dmg.datasets", config.data.dataset),
        ("model.physics", "dmg.physics", config.model.physics),
        ("train.loss", "dmg.losses", config.train.loss),
        ("engine.backend", "dmg.backends", config.engine.backend),
    ]
    single = isinstance(config.model.nn, ComponentRef)
    refs += [("model.nn" if single else f"model.nn.{n}", "dmg.nn", r) for n, r in config.model.networks.items()]
    refs += [(f"model.couplings.{i}", "dmg.couplings", r) for i, r in enumerate(config.model.couplings)]
    return refs


def resolve_paths(config: RunConfig, file_folder: Path | None, from_command_line: set[str], in_file: set[str]) -> None:
    """Make every relative path option absolute, by :data:`PATH_RULE`, and note how each was read.

    Path options are those a component marks with ``PATH_OPTION``, and ``output.root`` when written in
    the file (its default, ``runs``, stays relative to the working directory of each command).
    """
    notes: dict[str, str] = {}

    def resolve(key: str, value: str) -> str:
        given = Path(value).expanduser()
        if given.is_absolute():
            return str(given)
        on_command_line = key in from_command_line or file_folder is None
        base = file_folder if file_folder is not None and not on_command_line else Path.cwd()
        where = "the working directory" if on_command_line else f"the folder of the config file, {file_folder}"
        notes[key] = f"{key} {value!r} is read from {where}"
        return str((base / given).resolve())

    for key, group, ref in component_refs(config):
        extra = ref.model_extra or {}
        for option in options_with_role(_config_class(registry.get(group, ref.name)), "path"):
            value = extra.get(option)
            if isinstance(value, str) and value:
                extra[option] = resolve(f"{key}.{option}", value)
    if "output.root" in from_command_line or "output.root" in in_file:
        config.output.root = Path(resolve("output.root", str(config.output.root)))
    config._path_notes.update(notes)


def path_hint(config: RunConfig, prefix: str) -> str:
    """How the relative paths under ``prefix`` were read, for an error about them ("" if none was relative)."""
    notes = [note for key, note in config._path_notes.items() if key.startswith(prefix)]
    return f" ({'; '.join(notes)}: {PATH_RULE})" if notes else ""


def _given_keys(data: Any, prefix: str = "") -> set[str]:
    """Dotted keys present in a nested mapping."""
    keys: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            keys.add(dotted)
            keys |= _given_keys(value, f"{dotted}.")
    elif isinstance(data, list):
        for i, value in enumerate(data):
            keys |= _given_keys(value, f"{prefix}{i}.")
    return keys


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` override in place; the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value, e.g. train.epochs=5")
    key, raw = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {item!r} has an empty key part")
    value = parse_yaml(raw, f"override {item!r}: the value")
    if isinstance(value, str):
        value = _number_or_text(value)
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {'.'.join(parts[:i])} is not a section")
        node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"override {item!r}: {'.'.join(parts[:-1])} is not a section")


_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _number_or_text(text: str) -> Any:
    """YAML 1.1 reads ``1e-3`` as text; a user writing it on the command line means a number."""
    return float(text) if _SCIENTIFIC.fullmatch(text.strip()) else text


def dump_config(config: RunConfig) -> str:
    """The config as YAML (dates as ISO strings, paths as strings)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


# --------------------------------------------------------------------------- errors


def config_error(exc: ValidationError, model: type[BaseModel], prefix: str = "", where: str = "") -> ConfigError:
    """One readable :class:`ConfigError` from a pydantic ``ValidationError``: the key path, what is
    wrong and, for an unknown key, the closest valid key."""
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        loc = [p for p in loc if not p.startswith("function-") and p not in _UNION_TAGS]
        if err["type"] in SCALAR_TYPE_ERRORS:  # raised for a whole section: the context names the key
            field = str(err["ctx"]["field"])
            loc.append(field)
            err = {**err, "msg": err["msg"].removeprefix(f"{field}: "), "input": _item(err.get("input"), field)}
        full = ".".join(([prefix] if prefix else []) + loc)
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            close = get_close_matches(loc[-1], allowed, n=1, cutoff=0.5)
            parent = ".".join(([prefix] if prefix else []) + loc[:-1])
            hint = f"; did you mean '{parent + '.' if parent else ''}{close[0]}'?" if close else ""
            lines.append(f"unknown key '{full}'{hint} (valid keys here: {', '.join(allowed)})")
        elif err["type"] == "missing":
            lines.append(f"missing key '{full}'")
        elif not full:  # a check across several keys: pydantic's message names them
            lines.append(err["msg"].removeprefix("Value error, "))
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
            lines.append(f"'{full}': {err['msg'].removeprefix('Value error, ')}{shown}")
    head = "invalid configuration" + where
    return ConfigError(head + ":\n  " + "\n  ".join(lines) if len(lines) > 1 else f"{head}: {lines[0]}")


def _item(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, Mapping) else data


_UNION_TAGS = {"ComponentRef", "dict[str,ComponentRef]"}
"""Location parts pydantic adds for union members; not keys a user wrote."""


def _fields_at(model: type[BaseModel], loc: Sequence[str]) -> list[str]:
    """Field names of the sub-model at ``loc`` inside ``model`` (best effort through containers)."""
    current: Any = model
    for part in loc:
        current = _model_of(current)
        if current is None:
            return []
        if part in current.model_fields:
            current = current.model_fields[part].annotation
        elif part.isdigit():
            continue
        else:
            return []
    current = _model_of(current)
    return sorted(current.model_fields) if current is not None else []


def is_model_class(value: Any) -> TypeGuard[type[BaseModel]]:
    """Whether ``value`` is a pydantic model class (``dict[str, X]`` is not, although Python 3.10 calls it a type)."""
    return isinstance(value, type) and get_origin(value) is None and issubclass(value, BaseModel)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if is_model_class(annotation):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    if get_origin(annotation) is Annotated:
        return _model_of(get_args(annotation)[0])
    return None


# --------------------------------------------------------------------------- schema


def json_schema() -> dict[str, Any]:
    """JSON Schema of a run config with every installed component's options spelled out."""

    def union(group: str) -> Any:
        models = []
        for name in registry.entries(group):
            try:
                models.append(component_model(group, name))
            except RegistryError:
                continue
        if not models:
            return ComponentRef
        return Annotated[Union[tuple(models)], Field(discriminator="name")]  # noqa: UP007

    dataset, physics, network, loss, coupling, backend = (
        union(g) for g in ("dmg.datasets", "dmg.physics", "dmg.nn", "dmg.losses", "dmg.couplings", "dmg.backends")
    )
    data_model = create_model("DataConfig", __base__=DataConfig, dataset=(dataset, ...))
    networks = Union[network, dict[str, network]]  # noqa: UP007 - built at run time
    model_model = create_model(
        "ModelConfig",
        __base__=ModelConfig,
        physics=(physics, ...),
        nn=(networks, ...),
        couplings=(list[coupling], Field(default_factory=lambda: [{"name": "parameter_learning"}])),
    )
    train_model = create_model(
        "TrainConfig", __base__=TrainConfig, loss=(loss, Field(default_factory=lambda: {"name": "mse"}))
    )
    engine_model = create_model(
        "EngineConfig", __base__=EngineConfig, backend=(backend, Field(default_factory=lambda: {"name": "eager"}))
    )
    run_model = create_model(
        "RunConfig",
        __base__=RunConfig,
        data=(data_model, ...),
        model=(model_model, ...),
        engine=(engine_model, Field(default_factory=engine_model)),
        train=(train_model, Field(default_factory=train_model)),
    )
    schema = run_model.model_json_schema()
    schema["title"] = "dmg run configuration"
    return schema
