"""dmg.core: differentiable models that couple neural networks with process-based equations.

The public interface::

    Parameter, ParameterSpec          physical parameters and raw -> physical mapping
    Variable, State, MassBalance      declarations of forcings, states, outputs, conservation
    PhysicsModel, ProcessSlot         process models on the time-stepping engine
    Chain, Ensemble                   composite physics models
    ParameterLearning, ProcessReplacement, OutputCorrection   couplings
    DeltaModel                        networks + physics + couplings as one nn.Module
    Batch                             one minibatch, time-major
"""

from dmg.core.__about__ import __version__ as __version__
from dmg.core.composites import Chain, Ensemble
from dmg.core.couplings import Coupling, CouplingContext, OutputCorrection, ParameterLearning, ProcessReplacement
from dmg.core.data.batch import Batch
from dmg.core.errors import ConfigError, DmgError, InputError, RegistryError, ShapeError, SpecError
from dmg.core.model import DeltaModel
from dmg.core.parameters import Parameter, ParameterSpec
from dmg.core.physics import Outputs, PhysicsModel, ProcessSlot
from dmg.core.variables import MassBalance, State, Variable

__all__ = [
    "Batch",
    "Chain",
    "ConfigError",
    "Coupling",
    "CouplingContext",
    "DeltaModel",
    "DmgError",
    "Ensemble",
    "InputError",
    "MassBalance",
    "OutputCorrection",
    "Outputs",
    "Parameter",
    "ParameterLearning",
    "ParameterSpec",
    "PhysicsModel",
    "ProcessReplacement",
    "ProcessSlot",
    "RegistryError",
    "ShapeError",
    "SpecError",
    "State",
    "Variable",
]
