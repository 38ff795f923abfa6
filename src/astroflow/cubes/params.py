"""Names and units of a synthetic core's generating parameters.

A module of plain constants, without numpy: the workflow checks experiment settings against
these names while it is parsed.
"""

PARAM_NAMES: tuple[str, ...] = (
    "central_density",
    "flat_radius",
    "eta",
    "center_x",
    "center_y",
    "center_z",
    "log_density_sigma",
    "systemic_velocity",
    "infall_speed",
    "rotation_rate",
    "axis_x",
    "axis_y",
    "axis_z",
)
"""Generating parameters of a core, in the order of its ``params`` vector."""

PARAM_UNITS: tuple[str, ...] = (
    "cm-3",
    "pc",
    "",
    "pc",
    "pc",
    "pc",
    "",
    "km/s",
    "km/s",
    "km/s/pc",
    "",
    "",
    "",
)
"""Units of :data:`PARAM_NAMES` (astropy strings; centres are offsets from the box centre)."""
