"""PPV cubes as FITS with a world coordinate system, in both directions.

Writing: synthetic cubes become FITS files an astronomer opens in any viewer: RA---TAN and
DEC--TAN axes (pixel size from the voxel size and the distance), a radio velocity axis
(CTYPE3 VRAD, CUNIT3 km/s, SPECSYS, RESTFRQ) and BUNIT K; predicted profile cubes keep the
sky axes of the cube they came from and have a line-of-sight depth axis in pc.

Reading: any PPV cube, whatever its spectral axis (frequency or velocity, in any unit, radio
or optical convention) and axis order, is turned into the network's input: astropy's WCS gives
each channel's spectral coordinate, astropy units convert it to radio velocity with the rest
frequency (RESTFRQ, or RESTWAV), and the spectra are resampled onto the training channels.
Velocities stay in the cube's own rest frame (SPECSYS, LSRK for nearly every radio cube).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from astroflow.cubes.config import CoreConfig
from astroflow.cubes.params import PARAM_NAMES, PARAM_UNITS
from astroflow.cubes.shards import read_cube_shard
from astroflow.io import atomic_path

DEFAULT_POINTING_DEG = (67.5, 25.0)
"""(RA, Dec) of synthetic examples: a Taurus-like field, at the default 140 pc distance."""

_SPECTRAL_KEYS = ("RESTFRQ", "RESTWAV", "SPECSYS", "SSYSOBS", "SSYSSRC", "VELOSYS", "ZSOURCE")

PROFILE_UNITS = {"density": ("cm-3", "H2 number density"), "velocity": ("km/s", "LOS velocity")}


class FitsCubeError(ValueError):
    """A FITS file cannot be used as a PPV cube; the message names the file and the key."""


@dataclass(frozen=True)
class PPVCube:
    """A PPV cube read from FITS, in the package's conventions.

    ``data`` (nv, ny, nx) float32 brightness temperature in K, channels in ascending velocity,
    blanked (non-finite) values set to 0; ``velocities`` (nv,) radio velocities in km/s;
    ``valid`` (ny, nx) True where the whole spectrum was finite; ``celestial`` the 2D sky WCS
    (axes x, y of ``data``); ``rest_frequency_hz``; ``specsys`` the velocity frame.
    """

    data: np.ndarray
    velocities: np.ndarray
    valid: np.ndarray
    celestial: WCS
    rest_frequency_hz: float
    specsys: str


def write_ppv_fits(
    path: str | os.PathLike[str],
    cube: np.ndarray,
    channels_kms: np.ndarray,
    pixel_deg: float,
    rest_frequency_hz: float,
    *,
    pointing_deg: tuple[float, float] = DEFAULT_POINTING_DEG,
    beam_fwhm_deg: float | None = None,
    specsys: str = "LSRK",
    cards: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``cube`` (nv, ny, nx) in K as a FITS PPV cube with a celestial and velocity WCS.

    ``channels_kms`` (nv,) must be equally spaced (a linear FITS axis). The sky axes are
    gnomonic (TAN) about ``pointing_deg`` at the map centre, RA increasing to the left (east),
    ``pixel_deg`` per pixel. ``beam_fwhm_deg`` adds BMAJ/BMIN/BPA. ``cards`` are extra
    header keywords (long names are written as HIERARCH cards). Written atomically.
    """
    cube = np.asarray(cube, dtype=np.float32)
    channels = np.asarray(channels_kms, dtype=np.float64)
    if cube.ndim != 3 or cube.shape[0] != channels.size:
        raise ValueError(f"cube must be (nv, ny, nx) with nv = {channels.size}, got {cube.shape}")
    width = _channel_width(channels)
    nv, ny, nx = cube.shape
    header = fits.Header()
    header["BUNIT"] = ("K", "brightness temperature (Rayleigh-Jeans)")
    header["BTYPE"] = "Intensity"
    header.extend(_celestial_cards(nx, ny, pixel_deg, pointing_deg))
    header.extend(
        [
            ("CTYPE3", "VRAD", "radio velocity"),
            ("CUNIT3", "km/s"),
            ("CRPIX3", 1.0),
            ("CRVAL3", float(channels[0])),
            ("CDELT3", width),
            ("SPECSYS", specsys, "velocity rest frame"),
            ("RESTFRQ", float(rest_frequency_hz), "[Hz] line rest frequency"),
        ]
    )
    if beam_fwhm_deg:
        header["BMAJ"] = (float(beam_fwhm_deg), "[deg] beam FWHM")
        header["BMIN"] = (float(beam_fwhm_deg), "[deg] beam FWHM")
        header["BPA"] = (0.0, "[deg] beam position angle")
    header["ORIGIN"] = "astroflow"
    for key, value in (cards or {}).items():
        header[key if len(key) <= 8 else f"HIERARCH {key}"] = value
    return _write(path, cube, header)


def write_profile_fits(
    path: str | os.PathLike[str],
    profile: np.ndarray,
    celestial: WCS,
    bin_centers_pc: np.ndarray,
    quantity: str,
    *,
    valid: np.ndarray | None = None,
    cards: Mapping[str, Any] | None = None,
) -> Path:
    """Write a predicted profile cube (nb, ny, nx) with the sky WCS of its input cube.

    ``quantity`` is ``density`` (H2 number density, cm^-3) or ``velocity`` (LOS velocity,
    km/s). The third axis is line-of-sight depth (CTYPE3 LOSDEPTH, pc, from the box
    mid-plane, increasing away from the observer), bins ``bin_centers_pc`` equally spaced.
    Columns where ``valid`` (ny, nx) is False (blanked in the input) are written as NaN.
    """
    if quantity not in PROFILE_UNITS:
        raise ValueError(f"quantity must be one of {sorted(PROFILE_UNITS)}, got {quantity!r}")
    profile = np.array(profile, dtype=np.float32)
    centers = np.asarray(bin_centers_pc, dtype=np.float64)
    if profile.ndim != 3 or profile.shape[0] != centers.size:
        raise ValueError(
            f"profile must be (nb, ny, nx) with nb = {centers.size}, got {profile.shape}"
        )
    if celestial.pixel_n_dim != 2 or not celestial.has_celestial:
        raise ValueError("celestial must be the 2D sky WCS of the input cube")
    if valid is not None:
        profile[:, ~np.asarray(valid, dtype=bool)] = np.nan
    unit, kind = PROFILE_UNITS[quantity]
    header = fits.Header()
    header["BUNIT"] = unit
    header["BTYPE"] = kind
    sky = celestial.to_header(relax=True)
    for key in _SPECTRAL_KEYS:  # the input's spectral frame does not describe a depth axis
        sky.remove(key, ignore_missing=True)
    header.extend(sky, update=True)
    header.extend(
        [
            ("CTYPE3", "LOSDEPTH", "line-of-sight depth from the mid-plane"),
            ("CUNIT3", "pc"),
            ("CRPIX3", 1.0),
            ("CRVAL3", float(centers[0])),
            ("CDELT3", _channel_width(centers) if centers.size > 1 else 1.0),
        ]
    )
    header["ORIGIN"] = "astroflow"
    for key, value in (cards or {}).items():
        header[key if len(key) <= 8 else f"HIERARCH {key}"] = value
    return _write(path, profile, header)


def read_ppv_fits(
    path: str | os.PathLike[str],
    *,
    rest_frequency_hz: float | None = None,
    brightness_unit: str | None = None,
) -> PPVCube:
    """Read the first image HDU of ``path`` with >= 3 axes as a :class:`PPVCube`.

    The WCS must have two celestial axes and one spectral axis; any other axis (STOKES, say)
    must have length 1. ``rest_frequency_hz`` overrides the header's RESTFRQ/RESTWAV (needed
    for a frequency or optical-velocity axis). ``brightness_unit`` overrides BUNIT; K and mK
    are converted directly, Jy/beam through the beam in BMAJ/BMIN (Rayleigh-Jeans).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FITS cube not found: {path}")
    if path.stat().st_size == 0:
        raise FitsCubeError(f"{path}: the file is empty; copy the cube again or remove the file")
    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = next(
                (h for h in hdul if h.is_image and h.data is not None and h.data.ndim >= 3), None
            )
            if hdu is None:
                raise FitsCubeError(f"{path}: no image HDU with three or more axes")
            header = hdu.header.copy()
            data = np.asarray(hdu.data, dtype=np.float32)
    except OSError as err:
        raise FitsCubeError(
            f"{path}: not a FITS file ({err}); replace it with the FITS cube or remove it"
        ) from None
    with warnings.catch_warnings():
        # Old-style headers (VELO-LSR, say) are fixed by astropy with a warning; the fix is fine.
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    spec, lng, lat = wcs.wcs.spec, wcs.wcs.lng, wcs.wcs.lat
    if spec < 0 or lng < 0 or lat < 0:
        raise FitsCubeError(
            f"{path}: CTYPE keywords {list(wcs.wcs.ctype)} do not define two celestial axes and "
            "one spectral axis"
        )
    ndim = data.ndim
    extra = [i for i in range(ndim) if i not in (spec, lng, lat)]
    long_extra = [i for i in extra if data.shape[ndim - 1 - i] != 1]
    if long_extra:
        raise FitsCubeError(
            f"{path}: axis {long_extra[0] + 1} ({wcs.wcs.ctype[long_extra[0]]}) has length "
            f"{data.shape[ndim - 1 - long_extra[0]]}; only one plane per extra axis is supported"
        )
    # numpy axis of WCS axis i is ndim - 1 - i; order as (spectral, lat, lng), drop the rest.
    order = [ndim - 1 - spec, ndim - 1 - lat, ndim - 1 - lng] + [ndim - 1 - i for i in extra]
    cube = np.transpose(data, order).reshape(data.shape[order[0]], data.shape[order[1]], -1)

    rest = _rest_frequency(wcs, path, rest_frequency_hz)
    spectral = wcs.sub([spec + 1]).pixel_to_world(np.arange(cube.shape[0]))
    try:
        velocities = spectral.to_value(
            u.km / u.s, doppler_convention="radio", doppler_rest=rest * u.Hz
        )
    except (u.UnitConversionError, ValueError) as err:
        raise FitsCubeError(
            f"{path}: spectral axis {wcs.wcs.ctype[spec]} cannot be converted to radio "
            f"velocity ({err}); add the line's rest frequency as a RESTFRQ card (Hz) to the header"
        ) from err
    velocities = np.asarray(velocities, dtype=np.float64)
    cube = cube * np.float32(_brightness_to_kelvin(header, path, rest, brightness_unit))
    if velocities[-1] < velocities[0]:
        velocities, cube = velocities[::-1], cube[::-1]
    valid = np.isfinite(cube).all(axis=0)
    cube = np.where(np.isfinite(cube), cube, np.float32(0.0))
    celestial = wcs.sub([lng + 1, lat + 1])  # x (last data axis) is longitude, y latitude
    return PPVCube(
        data=np.ascontiguousarray(cube, dtype=np.float32),
        velocities=np.ascontiguousarray(velocities),
        valid=valid,
        celestial=celestial,
        rest_frequency_hz=rest,
        specsys=str(header.get("SPECSYS", wcs.wcs.specsys or "")),
    )


def resample_channels(
    data: np.ndarray,
    velocities: np.ndarray,
    channels_kms: np.ndarray,
    *,
    fill_value: float | None = None,
) -> np.ndarray:
    """Spectra (nv, ny, nx) at ``velocities`` (ascending) resampled onto ``channels_kms``.

    Input channel i covers the interval between the midpoints to its neighbours (half a step
    beyond the first and last centres). Onto channels at least as wide, the output is what a
    spectrometer with the training channels would have recorded: the average of the input over
    each output channel (flux-conserving rebinning; noise averages down). Onto narrower
    channels, averaging would give a staircase, so the output is the linear interpolation
    between input centres. The two rules agree at equal widths, and equal grids are returned
    unchanged. Output channels reaching outside the input raise a ValueError unless
    ``fill_value`` (K) is given, which is then the spectrum outside.
    """
    data = np.asarray(data, dtype=np.float64)
    v = np.asarray(velocities, dtype=np.float64)
    centres = np.asarray(channels_kms, dtype=np.float64)
    if data.ndim != 3 or data.shape[0] != v.size or v.size < 2:
        raise ValueError(f"data must be (nv, ny, nx) with nv = {v.size} >= 2, got {data.shape}")
    if np.any(np.diff(v) <= 0):
        raise ValueError("velocities must be strictly ascending")
    width = _channel_width(centres)
    out_edges = np.concatenate([centres - width / 2, [centres[-1] + width / 2]])
    in_edges = np.concatenate(
        [[1.5 * v[0] - 0.5 * v[1]], (v[1:] + v[:-1]) / 2, [1.5 * v[-1] - 0.5 * v[-2]]]
    )
    slack = 1e-6 * width  # rounding of the channel definitions is not a gap
    if fill_value is None and (
        out_edges[0] < in_edges[0] - slack or out_edges[-1] > in_edges[-1] + slack
    ):
        raise ValueError(
            f"training channels {out_edges[0]:.3f}..{out_edges[-1]:.3f} km/s reach outside the "
            f"cube's {in_edges[0]:.3f}..{in_edges[-1]:.3f} km/s; give fill_value to pad"
        )
    fill = 0.0 if fill_value is None else float(fill_value)
    spectra = data.reshape(v.size, -1)
    if np.median(np.diff(v)) <= width:
        # Integral of the piecewise-constant input from the first input edge, at every edge;
        # it is linear between edges, and grows by fill per km/s outside the input.
        integral = np.concatenate(
            [
                np.zeros((1, spectra.shape[1])),
                np.cumsum(spectra * np.diff(in_edges)[:, None], axis=0),
            ]
        )
        at_out = _interp_rows(in_edges, integral, out_edges)
        at_out += (
            fill
            * (
                np.minimum(out_edges - in_edges[0], 0.0) + np.maximum(out_edges - in_edges[-1], 0.0)
            )[:, None]
        )
        out = np.diff(at_out, axis=0) / width
    else:
        nodes = np.concatenate([[in_edges[0]], v, [in_edges[-1]]])
        values = np.concatenate([spectra[:1], spectra, spectra[-1:]])
        out = _interp_rows(nodes, values, centres)
        out[(centres < nodes[0]) | (centres > nodes[-1])] = fill
    return out.reshape(centres.size, *data.shape[1:]).astype(np.float32)


def load_ppv_on_channels(
    path: str | os.PathLike[str],
    channels_kms: np.ndarray,
    *,
    velocity_offset_kms: float = 0.0,
    fill_value: float | None = None,
    rest_frequency_hz: float | None = None,
) -> tuple[np.ndarray, PPVCube]:
    """A FITS PPV cube as network input: (nv, ny, nx) in K on the training channels.

    ``velocity_offset_kms`` is subtracted from the cube's velocities first, to bring a source's
    systemic velocity (LSR) to the training window. Returns the resampled cube and the
    :class:`PPVCube` it came from (for its sky WCS and valid-pixel mask).
    """
    ppv = read_ppv_fits(path, rest_frequency_hz=rest_frequency_hz)
    cube = resample_ppv(
        ppv, path, channels_kms, velocity_offset_kms=velocity_offset_kms, fill_value=fill_value
    )
    return cube, ppv


def resample_ppv(
    ppv: PPVCube,
    path: str | os.PathLike[str],
    channels_kms: np.ndarray,
    *,
    velocity_offset_kms: float = 0.0,
    fill_value: float | None = None,
) -> np.ndarray:
    """The spectra of ``ppv`` (read from ``path``) shifted by ``-velocity_offset_kms`` and
    resampled onto ``channels_kms``: (nv, ny, nx) in K (see :func:`resample_channels`)."""
    try:
        return resample_channels(
            ppv.data, ppv.velocities - velocity_offset_kms, channels_kms, fill_value=fill_value
        )
    except ValueError as err:
        raise FitsCubeError(f"{path}: {err}") from err


def write_shard_examples(
    shard_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], n_examples: int
) -> list[Path]:
    """Write the first ``n_examples`` cubes of a cube shard as ``core_{i:03d}.fits``.

    The pixel size is the voxel size at the configured distance, the beam the configured one;
    each file records its shard, index and generating parameters as HIERARCH cards, so a
    synthetic example run through the real-data path can be checked against its truth.
    """
    shard = read_cube_shard(shard_path, slice(0, n_examples))
    config: CoreConfig = shard.config
    pixel_deg = math.degrees(config.voxel_pc / config.distance_pc)
    beam_deg = math.degrees(config.beam_fwhm_pc / config.distance_pc)
    paths = []
    for i, (cube, params) in enumerate(zip(shard.cubes, shard.params, strict=True)):
        cards: dict[str, Any] = {
            "OBJECT": f"astroflow core {i}",
            "ASTROFLOW SHARD": Path(shard_path).name,
            "ASTROFLOW INDEX": i,
            "ASTROFLOW DISTANCE_PC": config.distance_pc,
        }
        for name, unit, value in zip(PARAM_NAMES, PARAM_UNITS, params, strict=True):
            cards[f"ASTROFLOW {name.upper()}"] = (float(value), unit)
        paths.append(
            write_ppv_fits(
                Path(out_dir) / f"core_{i:03d}.fits",
                cube,
                config.channels_kms,
                pixel_deg,
                config.tracer_constants.rest_frequency_hz,
                beam_fwhm_deg=beam_deg or None,
                cards=cards,
            )
        )
    return paths


def _celestial_cards(
    nx: int, ny: int, pixel_deg: float, pointing_deg: tuple[float, float]
) -> list[tuple]:
    return [
        ("CTYPE1", "RA---TAN"),
        ("CUNIT1", "deg"),
        ("CRPIX1", (nx + 1) / 2),
        ("CRVAL1", float(pointing_deg[0])),
        ("CDELT1", -float(pixel_deg)),
        ("CTYPE2", "DEC--TAN"),
        ("CUNIT2", "deg"),
        ("CRPIX2", (ny + 1) / 2),
        ("CRVAL2", float(pointing_deg[1])),
        ("CDELT2", float(pixel_deg)),
        ("RADESYS", "ICRS"),
    ]


def _write(path: str | os.PathLike[str], data: np.ndarray, header: fits.Header) -> Path:
    hdu = fits.PrimaryHDU(data=data, header=header)
    with atomic_path(path) as tmp:
        hdu.writeto(tmp, overwrite=True, output_verify="exception")
    return Path(path)


def _channel_width(centres: np.ndarray) -> float:
    steps = np.diff(centres)
    if steps.size == 0 or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        raise ValueError("channels must be equally spaced (at least two)")
    return float((centres[-1] - centres[0]) / steps.size)


def _rest_frequency(wcs: WCS, path: Path, override: float | None) -> float:
    if override is not None:
        return float(override)
    if wcs.wcs.restfrq > 0:
        return float(wcs.wcs.restfrq)
    if wcs.wcs.restwav > 0:
        return float((wcs.wcs.restwav * u.m).to_value(u.Hz, equivalencies=u.spectral()))
    raise FitsCubeError(
        f"{path}: no rest frequency; add the line's rest frequency as a RESTFRQ card (Hz) to the "
        "header"
    )


def _brightness_to_kelvin(
    header: fits.Header, path: Path, rest_hz: float, override: str | None
) -> float:
    """Factor turning the data's brightness unit into K (Rayleigh-Jeans)."""
    name = override or header.get("BUNIT")
    if not name:
        raise FitsCubeError(
            f"{path}: no brightness unit; add a BUNIT card (K, mK or Jy/beam) to the header"
        )
    try:
        unit = u.Unit(name.replace("JY", "Jy").replace("BEAM", "beam"), parse_strict="raise")
    except ValueError as err:
        raise FitsCubeError(f"{path}: BUNIT {name!r} is not a unit astropy reads") from err
    if unit.is_equivalent(u.K):
        return float(unit.to(u.K))
    if unit.is_equivalent(u.Jy / u.beam):
        if "BMAJ" not in header or "BMIN" not in header:
            raise FitsCubeError(f"{path}: BUNIT {name!r} needs BMAJ and BMIN to convert to K")
        fwhm_to_sigma = 1.0 / math.sqrt(8.0 * math.log(2.0))
        beam_area = 2.0 * math.pi * header["BMAJ"] * header["BMIN"] * fwhm_to_sigma**2 * u.deg**2
        per_beam = (1.0 * unit * u.beam).to(u.Jy)
        kelvin = (per_beam / beam_area).to(
            u.K, equivalencies=u.brightness_temperature(rest_hz * u.Hz)
        )
        return float(kelvin.value)
    raise FitsCubeError(f"{path}: BUNIT {name!r} is neither a temperature nor Jy/beam")


def _interp_rows(nodes: np.ndarray, values: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Linear interpolation of every column of ``values`` (n_nodes, P) at ``points`` (m,),
    clamped to the end values; the index search is shared by all P columns."""
    j = np.clip(np.searchsorted(nodes, points, side="right") - 1, 0, nodes.size - 2)
    w = np.clip((points - nodes[j]) / (nodes[j + 1] - nodes[j]), 0.0, 1.0)[:, None]
    return values[j] * (1.0 - w) + values[j + 1] * w
