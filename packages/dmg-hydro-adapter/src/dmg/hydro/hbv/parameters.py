"""Declarations of the HBV parameters, forcings, attributes, states and outputs.

Bounds are those of the published δHBV models (Feng et al. 2022; Song et al. 2024, 2025); a
network's unit-interval output ``u`` maps to ``low + u * (high - low)``.
"""

from __future__ import annotations

from dmg.core import Parameter, State, Variable

# ----------------------------------------------------------------- parameters
BETA = Parameter("BETA", 1.0, 6.0, "", "shape exponent of the soil recharge curve (SM/FC)**BETA")
FC = Parameter("FC", 50.0, 1000.0, "mm", "field capacity: largest soil-moisture storage")
K0 = Parameter("K0", 0.05, 0.9, "1/day", "recession coefficient of quick flow from the upper zone above UZL")
K1 = Parameter("K1", 0.01, 0.5, "1/day", "recession coefficient of interflow from the upper zone")
K2 = Parameter("K2", 0.001, 0.2, "1/day", "recession coefficient of baseflow from the lower zone")
LP = Parameter("LP", 0.2, 1.0, "", "fraction of FC above which evapotranspiration runs at its potential rate")
PERC = Parameter("PERC", 0.0, 10.0, "mm/day", "largest percolation from the upper to the lower zone")
UZL = Parameter("UZL", 0.0, 100.0, "mm", "upper-zone storage above which quick flow starts")
TT = Parameter("TT", -2.5, 2.5, "°C", "temperature threshold of snowfall, melt and refreezing")
CFMAX = Parameter("CFMAX", 0.5, 10.0, "mm/°C/day", "degree-day melt factor")
CFR = Parameter("CFR", 0.0, 0.1, "", "refreezing factor, as a fraction of CFMAX")
CWH = Parameter("CWH", 0.0, 0.2, "", "liquid water the snowpack holds, as a fraction of SP")
BETAET = Parameter("BETAET", 0.3, 5.0, "", "shape exponent of the evapotranspiration curve")
C = Parameter("C", 0.0, 1.0, "1/day", "capillary-rise coefficient from the lower zone into the soil")
RT = Parameter("RT", 0.0, 20.0, "mm/day", "largest lateral exchange of the lower zone")
AC = Parameter("AC", 0.0, 2500.0, "km²", "upstream area below which the lower zone loses water laterally")

CORE_PARAMETERS = (BETA, FC, K0, K1, K2, LP, PERC, UZL, TT, CFMAX, CFR, CWH)
"""The twelve parameters of every HBV variant, in the published channel order."""

# ------------------------------------------------------------------- inputs
FORCINGS = (
    Variable("P", "mm/day", "precipitation", (0.0, 30.0)),
    Variable("T", "°C", "daily mean air temperature", (-15.0, 30.0)),
    Variable("PET", "mm/day", "potential evapotranspiration", (0.0, 6.0)),
)
"""Forcings of every variant, in the published order (prcp, tmean, pet)."""

UPSTREAM_AREA = Variable("upstream_area", "km²", "area draining to the unit's outlet", (10.0, 10000.0))
ELEVATION = Variable("elevation", "m", "mean elevation of the unit", (0.0, 3500.0))

# ------------------------------------------------------------------- states
INITIAL_STORE = 0.001
"""Initial value of every store (mm): small and non-zero, as in the published models."""

STATES = (
    State("SP", "mm", "snowpack (frozen water)", (0.0, 500.0), initial=INITIAL_STORE),
    State("MW", "mm", "liquid water held in the snowpack", (0.0, 50.0), initial=INITIAL_STORE),
    State("SM", "mm", "soil moisture", (0.0, 1000.0), initial=INITIAL_STORE),
    State("SUZ", "mm", "upper groundwater zone", (0.0, 200.0), initial=INITIAL_STORE),
    State("SLZ", "mm", "lower groundwater zone", (0.0, 500.0), initial=INITIAL_STORE),
)

# ------------------------------------------------------------------ outputs
FLOW_OUTPUTS = (
    Variable("Q", "mm/day", "total runoff Q0 + Q1 + Q2, before routing", (0.0, 30.0)),
    Variable("Q0", "mm/day", "quick flow from the upper zone above UZL, before routing", (0.0, 20.0)),
    Variable("Q1", "mm/day", "interflow from the upper zone, before routing", (0.0, 10.0)),
    Variable("Q2", "mm/day", "baseflow from the lower zone, before routing", (0.0, 5.0)),
)
DIAGNOSTIC_OUTPUTS = (
    Variable("AET", "mm/day", "actual evapotranspiration", (0.0, 6.0)),
    Variable("PET", "mm/day", "potential evapotranspiration, as forced", (0.0, 6.0)),
    Variable("SWE", "mm", "snow water equivalent: snowpack SP after the step", (0.0, 500.0)),
    Variable("recharge", "mm/day", "water passed from the soil to the upper zone", (0.0, 30.0)),
    Variable("excess", "mm/day", "soil water above field capacity passed to the upper zone", (0.0, 30.0)),
    Variable("evapfactor", "", "evapotranspiration factor: AET = min(SM, PET * evapfactor)", (0.0, 1.0)),
    Variable("tosoil", "mm/day", "meltwater released from the snowpack to the soil", (0.0, 30.0)),
    Variable("percolation", "mm/day", "percolation from the upper to the lower zone", (0.0, 10.0)),
)
CAPILLARY_OUTPUT = Variable("capillary", "mm/day", "capillary rise from the lower zone into the soil", (0.0, 5.0))
LATERAL_OUTPUT = Variable(
    "lateral",
    "mm/day",
    "lateral exchange of the lower zone as applied (positive: gain; a loss stops at the store's floor)",
    (-20.0, 20.0),
)

# ------------------------------------------------------- hourly variants
F0 = Parameter("F0", 120.0, 2880.0, "mm/day", "infiltration capacity of dry soil (5 to 120 mm/h, written per day)")
FMIN = Parameter("FMIN", 0.0, 1.0, "", "infiltration capacity of wet soil, as a fraction of F0")
ALPHA_DECLINE = Parameter("ALPHA", 0.5, 5.0, "", "shape exponent of the decline of infiltration capacity with wetness")
ALPHA_SPREAD = Parameter(
    "ALPHA", 0.5, 1.0, "", "exponent of the spread of infiltration capacity over the unsaturated area"
)
KS = Parameter(
    "KS", 0.05, 10.0, "1/day", "recession of the infiltration-excess cascade: each of its two stores drains at 2 KS"
)
K0_HOURLY = Parameter(
    "K0", 0.05, 12.0, "1/day", "recession coefficient of quick flow from the upper zone above UZL (hourly range)"
)

HOURLY_FORCINGS = (
    Variable("P", "mm/h", "precipitation in the hour", (0.0, 3.0)),
    Variable("T", "°C", "mean air temperature of the hour", (-15.0, 30.0)),
    Variable("PET", "mm/h", "potential evapotranspiration in the hour", (0.0, 0.5)),
)
"""Forcings of the hourly variants, in the published order (prcp, tmean, pet)."""

CASCADE_STATES = (
    State("SIE1", "mm", "first store of the infiltration-excess cascade", (0.0, 50.0), initial=INITIAL_STORE),
    State("SIE2", "mm", "second store of the infiltration-excess cascade", (0.0, 50.0), initial=INITIAL_STORE),
)

INFILTRATION_EXCESS_OUTPUT = Variable(
    "IE", "mm/day", "infiltration excess: water the soil cannot take up (Hortonian runoff)", (0.0, 30.0)
)
CASCADE_OUTPUT = Variable(
    "QIE", "mm/day", "outflow of the infiltration-excess cascade, part of the runoff Q", (0.0, 30.0)
)
FLOORS_OUTPUT = Variable(
    "floors",
    "mm/day",
    "water the floors of the stores add: start-of-step guardrails, soil moisture after evapotranspiration, "
    "lower zone after capillary rise",
    (0.0, 0.01),
)
