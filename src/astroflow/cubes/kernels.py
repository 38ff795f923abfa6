"""Compiled loops of the core synthesis: each does in one pass what numpy needs several for.

A core is small (32^3 voxels), so numpy's cost is the passes over memory, one per operation,
and its float32 transcendental functions (a few ns per value here). These loops fuse the
passes, and evaluate exp, log, sin and cos as the single-precision minimax polynomials of the
Cephes library (Moshier 1989, within 2 ulp on their ranges), written out in plain arithmetic
so that LLVM vectorises them: numba's own ``math.exp`` calls libm once per value.

No fast-math flags are used: every operation rounds as IEEE 754 says, so a shard's bytes do
not depend on the vector width of the machine that wrote it. Only the synthesis imports this
module (numba's import and first compilation, cached on disk, stay out of the workflow parse).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 split so that n * _LN2_HI is exact
_LN2_LO = np.float32(-2.12194440e-4)
_EXP_MIN = np.float32(-87.0)  # below: 0 (e^-87 is float32's smallest normal, near enough)
_EXP_MAX = np.float32(88.0)
_SQRT2 = np.float32(1.4142135623730951)
_QUARTER_TURN = np.float32(math.pi / 2.0)
_0 = np.uint64(0)
_32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_PHILOX_M0 = np.uint64(0xD2511F53)
_PHILOX_M1 = np.uint64(0xCD9E8D57)
_PHILOX_W0 = np.uint64(0x9E3779B9)
_PHILOX_W1 = np.uint64(0xBB67AE85)


def _bitcast(source: types.Type, target: types.Type):
    """A compiled reinterpretation of a ``source`` value's bits as a ``target`` (no conversion)."""

    @intrinsic
    def bitcast(typingctx, value):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(target))

        return target(source), codegen

    return bitcast


_bits_of = _bitcast(types.float32, types.int32)
_float_of = _bitcast(types.int32, types.float32)


@njit(inline="always", **_JIT)
def exp32(x: float) -> float:
    """e^x in float32 for x in [-87, 88]; 0 below (including -inf), e^88 above."""
    clamped = min(max(x, _EXP_MIN), _EXP_MAX)
    n = np.floor(clamped * _LOG2E + np.float32(0.5))
    r = clamped - n * _LN2_HI
    r = r - n * _LN2_LO
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * (r * r) + r + np.float32(1.0)
    scale = _float_of((np.int32(n) + np.int32(127)) << np.int32(23))  # 2^n, n in [-126, 127]
    return p * scale if x >= _EXP_MIN else np.float32(0.0)


@njit(inline="always", **_JIT)
def log32(x: float) -> float:
    """ln x in float32 for positive normal x."""
    bits = _bits_of(x)
    exponent = (bits >> np.int32(23)) - np.int32(127)
    mantissa = _float_of((bits & np.int32(0x7FFFFF)) | np.int32(0x3F800000))  # in [1, 2)
    above = mantissa > _SQRT2
    f = mantissa * np.float32(0.5) - np.float32(1.0) if above else mantissa - np.float32(1.0)
    e = np.float32(exponent + np.int32(1)) if above else np.float32(exponent)
    z = f * f
    y = np.float32(7.0376836292e-2)
    y = y * f - np.float32(1.1514610310e-1)
    y = y * f + np.float32(1.1676998740e-1)
    y = y * f - np.float32(1.2420140846e-1)
    y = y * f + np.float32(1.4249322787e-1)
    y = y * f - np.float32(1.6668057665e-1)
    y = y * f + np.float32(2.0000714765e-1)
    y = y * f - np.float32(2.4999993993e-1)
    y = y * f + np.float32(3.3333331174e-1)
    y = y * f * z
    y = y + e * _LN2_LO
    y = y - np.float32(0.5) * z
    return f + y + e * _LN2_HI


@njit(inline="always", **_JIT)
def philox4x32(c0: int, c1: int, c2: int, c3: int, k0: int, k1: int) -> tuple[int, int, int, int]:
    """Philox4x32-10 (Salmon et al. 2011, the generator of cuRAND and Random123): four
    random 32-bit words from a 128-bit counter and a 64-bit key, all given and returned as
    uint64 holding 32-bit values. A counter-based generator has no state to carry from one
    value to the next, so a loop over counters vectorises; 10 rounds pass BigCrush."""
    for _ in range(10):
        p0 = c0 * _PHILOX_M0
        p1 = c2 * _PHILOX_M1
        c0, c1, c2, c3 = (p1 >> _32) ^ c1 ^ k0, p1 & _LOW32, (p0 >> _32) ^ c3 ^ k1, p0 & _LOW32
        k0 = (k0 + _PHILOX_W0) & _LOW32
        k1 = (k1 + _PHILOX_W1) & _LOW32
    return c0, c1, c2, c3


@njit(inline="always", **_JIT)
def turn32(word: int) -> tuple[float, float]:
    """(cos, sin) of the angle 2 pi w / 2^32 of a random 32-bit ``word`` read as a signed w.

    The angle's nearest quarter turn q is taken off first, so the polynomials only see
    angles in [-pi/4, pi/4], and q rotates their result.
    """
    turns = np.float32(np.int32(word)) * np.float32(2.0**-30)  # quarter turns, [-2, 2]
    q = np.floor(turns + np.float32(0.5))
    a = (turns - q) * _QUARTER_TURN
    z = a * a
    s = np.float32(-1.9515295891e-4)
    s = s * z + np.float32(8.3321608736e-3)
    s = s * z - np.float32(1.6666654611e-1)
    s = s * z * a + a
    c = np.float32(2.443315711809948e-5)
    c = c * z - np.float32(1.388731625493765e-3)
    c = c * z + np.float32(4.166664568298827e-2)
    c = c * z * z - np.float32(0.5) * z + np.float32(1.0)
    one, two = np.float32(1.0), np.float32(2.0)
    odd = (q == one) | (q == -one)
    half_turn = (q == two) | (q == -two)
    cosine = s if odd else c
    sine = c if odd else s
    cosine = -cosine if (q == one) | half_turn else cosine
    sine = -sine if (q == -one) | half_turn else sine
    return cosine, sine


@njit(inline="always", **_JIT)
def rayleigh32(word: int) -> float:
    """sqrt(-2 ln u) for u = (b + 1/2) 2^-32 in (0, 1), b a random 32-bit ``word`` taken as
    unsigned after flipping its top bit: the modulus of a complex normal whose real and
    imaginary parts have unit variance; at most 6.7 (u >= 2^-33), a tail cut at 1e-10.
    u is formed in float64, so that its smallest values keep their precision."""
    u = np.float32((np.float64(np.int32(word)) + 2147483648.5) * 2.0**-32)
    return np.sqrt(np.float32(-2.0) * log32(u))


@njit(inline="always", **_JIT)
def _two_complex_normals(
    counter: int, k0: int, k1: int
) -> tuple[float, float, float, float, float, float]:
    """Moduli and (cos, sin) of the phases of two complex normals from one Philox block."""
    w0, w1, w2, w3 = philox4x32(np.uint64(counter), _0, _0, _0, k0, k1)
    c0, s0 = turn32(w1)
    c1, s1 = turn32(w3)
    return rayleigh32(w0), c0, s0, rayleigh32(w2), c1, s1


@njit(**_JIT)
def fill_complex_normals(
    key: tuple[int, int],
    amplitude: np.ndarray,
    run_start: np.ndarray,
    run_length: np.ndarray,
    values: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write complex normals times ``amplitude`` into runs of consecutive entries of ``out``.

    Normals 2i and 2i + 1 come from the Philox block of counter i under ``key`` (two uint64
    holding 32-bit values). ``out`` is a flat float32 view of a complex64 array (real,
    imaginary interleaved); run i covers complex entries run_start[i] to run_start[i] +
    run_length[i] - 1, and the runs take ``amplitude`` (float32, one per entry, in run order)
    in order. The values are made in one contiguous pass into ``values`` (float32, at least
    4 ceil(size / 2); entries 2k and 2k + 1 hold normal k), which vectorises, and then copied
    run by run.
    """
    k0, k1 = key
    size = amplitude.size
    for i in range(size // 2):
        m0, c0, s0, m1, c1, s1 = _two_complex_normals(i, k0, k1)
        m0 *= amplitude[2 * i]
        m1 *= amplitude[2 * i + 1]
        values[4 * i] = m0 * c0
        values[4 * i + 1] = m0 * s0
        values[4 * i + 2] = m1 * c1
        values[4 * i + 3] = m1 * s1
    if size % 2:
        m0, c0, s0, _, _, _ = _two_complex_normals(size // 2, k0, k1)
        values[2 * size - 2] = m0 * amplitude[size - 1] * c0
        values[2 * size - 1] = m0 * amplitude[size - 1] * s0
    k = 0
    for i in range(run_start.size):
        run = out[2 * run_start[i] : 2 * (run_start[i] + run_length[i])]
        source = values[2 * k : 2 * k + run.size]
        for j in range(run.size):
            run[j] = source[j]
        k += run_length[i]


@njit(**_JIT)
def line_sums(
    u: np.ndarray,
    peak: np.ndarray,
    origin: float,
    step: float,
    run: int,
    clip: float,
    block: int,
    out: np.ndarray,
) -> None:
    """out[j, col] = sum over z of peak[z, col] exp(-(u[z, col] - origin - j step)^2).

    ``u`` and ``peak`` are (nz, columns) float32, ``out`` (channels, columns) float32, all in
    units where a line is exp(-x^2) times its peak. Channels go in runs of ``run``; in a run
    starting at c_0, with x = u - c_0 clipped to [-clip, span + clip], the line at c_0 + j step
    is exp(-x^2) exp(2 step x)^j exp(-j^2 step^2): two exps per voxel and run, then a product
    per channel, and exp(-j^2 step^2) once per output row at the end. Clipping changes only
    lines below e^-clip^2 of their peak and keeps every factor in float32's normal range for a
    run short enough (see :func:`astroflow.cubes.line.optically_thin_spectra`). Columns go in
    blocks of ``block``, so a block's spectra stay in the first-level cache. (The loops index
    slices from 0: numba then drops its negative-index checks and LLVM vectorises them.)
    """
    nz, columns = u.shape
    n_channels = out.shape[0]
    out[:] = 0.0
    line = np.empty(block, dtype=np.float32)
    ratio = np.empty(block, dtype=np.float32)
    two_step = np.float32(2.0 * step)
    for lo in range(0, columns, block):
        width = min(block, columns - lo)
        for z in range(nz):
            velocities = u[z, lo : lo + width]
            peaks = peak[z, lo : lo + width]
            for first in range(0, n_channels, run):
                count = min(run, n_channels - first)
                start = np.float32(origin + first * step)
                high = np.float32((count - 1) * step + clip)
                for i in range(width):
                    x = min(max(velocities[i] - start, np.float32(-clip)), high)
                    line[i] = peaks[i] * exp32(-x * x)
                    ratio[i] = exp32(two_step * x)
                for j in range(count):
                    row = out[first + j, lo : lo + width]
                    for i in range(width):
                        row[i] += line[i]
                        line[i] *= ratio[i]
    for first in range(0, n_channels, run):
        for j in range(min(run, n_channels - first)):
            out[first + j] *= np.float32(math.exp(-((j * step) ** 2)))


@njit(**_JIT)
def core_fields(
    offsets: tuple[np.ndarray, np.ndarray, np.ndarray],
    inverse_flat2: float,
    half_eta: float,
    sigma_s: float,
    log_scale: float,
    infall: float,
    spin: tuple[float, float],
    log_density: np.ndarray,
    turbulence: np.ndarray,
    offset_velocity: float,
    density: np.ndarray,
    velocity: np.ndarray,
) -> None:
    """Density and line-of-sight velocity of a core, (z, y, x) float32, in one pass.

    With q = r^2 / R_flat^2 from the voxel ``offsets`` (dz, dy, dx) in pc: density =
    exp(log_scale - half_eta ln(1 + q) + sigma_s g) for the unit Gaussian field g
    (``log_density``), and velocity = infall dz / (1 + q) + spin_x dy - spin_y dx + turbulence +
    offset_velocity (radial infall, solid-body rotation, turbulence, systemic offset).
    """
    dz, dy, dx = offsets
    spin_x, spin_y = spin
    for z in range(dz.size):
        for y in range(dy.size):
            base = dz[z] * dz[z] + dy[y] * dy[y]
            pull = infall * dz[z]
            rotation = spin_x * dy[y] + offset_velocity
            gaussian = log_density[z, y]
            turbulent = turbulence[z, y]
            density_row = density[z, y]
            velocity_row = velocity[z, y]
            for x in range(dx.size):
                one_plus_q = np.float32(1.0) + (base + dx[x] * dx[x]) * inverse_flat2
                log_n = log_scale - half_eta * log32(one_plus_q) + sigma_s * gaussian[x]
                density_row[x] = exp32(log_n)
                velocity_row[x] = pull / one_plus_q + (rotation - spin_y * dx[x]) + turbulent[x]
