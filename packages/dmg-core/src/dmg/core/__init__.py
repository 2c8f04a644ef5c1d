"""dmg.core: differentiable models that couple neural networks with process-based equations.

The public interface::

    Parameter, ParameterSpec          physical parameters and raw -> physical mapping
    Variable, State, MassBalance      declarations of forcings, states, outputs, conservation
    PhysicsModel, Signature           what a process model is: its immutable signature
    StepModel, SeriesModel            the two ways to write one: a time step, or the whole series
    PhysicsConfig, ComponentConfig    options: a model's nested ``Config`` subclasses PhysicsConfig
    ProcessSlot, Processes            processes a network may replace, and their fillers in a run
    NO_PROCESSES, SlotFiller          no slot filled (a ``simulate`` default); a filler's type
    TensorDict, WarmupMode            type hints of ``step``/``simulate``; 'spinup' or 'inline'
    Chain, Ensemble                   composite physics models
    Engine, integrate                 how models are run: backend, memory policy, warm-up, checks
    ParameterLearning, ProcessReplacement, OutputCorrection   couplings
    Network                           the network interface couplings rely on
    DeltaModel                        networks + physics + couplings as one nn.Module
    Batch                             one minibatch, time-major
    INTERFACE_VERSION, require_interface    the version of the interface above that sibling packages
                                      build on, and the check they run at import (dmg.core.interface)
"""

from dmg.core.__about__ import __version__ as __version__
from dmg.core.components import ComponentConfig, PhysicsConfig
from dmg.core.composites import Chain, Ensemble
from dmg.core.couplings import Coupling, CouplingContext, OutputCorrection, ParameterLearning, ProcessReplacement
from dmg.core.data.batch import Batch
from dmg.core.engine import Engine, integrate
from dmg.core.errors import ConfigError, DataWarning, DmgError, InputError, RegistryError, ShapeError, SpecError
from dmg.core.interface import INTERFACE_VERSION, InterfaceVersionError, require_interface
from dmg.core.model import DeltaModel
from dmg.core.networks import Network
from dmg.core.parameters import Parameter, ParameterSpec
from dmg.core.physics import Composite, Outputs, PhysicsModel, SeriesModel, StepModel
from dmg.core.signature import NO_PROCESSES, Processes, ProcessSlot, Signature, SlotFiller, TensorDict, WarmupMode
from dmg.core.variables import MassBalance, State, Variable

__all__ = [
    "INTERFACE_VERSION",
    "NO_PROCESSES",
    "Batch",
    "Chain",
    "ComponentConfig",
    "Composite",
    "ConfigError",
    "Coupling",
    "CouplingContext",
    "DataWarning",
    "DeltaModel",
    "DmgError",
    "Engine",
    "Ensemble",
    "InputError",
    "InterfaceVersionError",
    "MassBalance",
    "Network",
    "OutputCorrection",
    "Outputs",
    "Parameter",
    "ParameterLearning",
    "ParameterSpec",
    "PhysicsConfig",
    "PhysicsModel",
    "ProcessReplacement",
    "ProcessSlot",
    "Processes",
    "RegistryError",
    "SeriesModel",
    "ShapeError",
    "Signature",
    "SlotFiller",
    "SpecError",
    "State",
    "StepModel",
    "TensorDict",
    "Variable",
    "WarmupMode",
    "integrate",
    "require_interface",
]
