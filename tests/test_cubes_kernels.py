"""The compiled loops of the core synthesis: their functions against float64 references, their
generator against the published known answers, and their normals against the normal law."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from numba import njit
from scipy import stats

from astroflow.cubes import kernels
from astroflow.cubes.fields import CroppedGaussianField, _runs, add_standard_normals


@njit
def _exp_all(x, out):
    for i in range(x.size):
        out[i] = kernels.exp32(x[i])


@njit
def _log_all(x, out):
    for i in range(x.size):
        out[i] = kernels.log32(x[i])


@njit
def _turn_all(words, cosine, sine):
    for i in range(words.size):
        cosine[i], sine[i] = kernels.turn32(np.uint64(words[i]))


def test_exp_and_log_are_within_a_few_ulp_of_float64():
    x = np.linspace(-87.0, 88.0, 400_001, dtype=np.float32)
    got = np.empty_like(x)
    _exp_all(x, got)
    exact = np.exp(x.astype(np.float64))
    assert np.max(np.abs(got - exact) / exact) < 2.5e-7  # float32's ulp is 6e-8 to 1.2e-7
    _exp_all(np.array([-87.5, -1e30, -np.inf], np.float32), got[:3])
    assert np.all(got[:3] == 0.0)  # below float32's normal range: exactly zero

    x = np.exp(np.linspace(-85.0, 85.0, 400_001)).astype(np.float32)
    _log_all(x, got)
    exact = np.log(x.astype(np.float64))
    assert np.max(np.abs(got - exact) - 1.5e-7 * np.abs(exact)) < 1e-7
    near_one = np.linspace(0.7, 1.4, 100_001, dtype=np.float32)
    _log_all(near_one, got[: near_one.size])
    assert np.max(np.abs(got[: near_one.size] - np.log(near_one.astype(np.float64)))) < 1e-7


def test_turn_gives_cosine_and_sine_of_the_word_angle_in_every_quadrant():
    edges = [0, 1, 2**29 - 1, 2**29, 2**30, 2**31 - 1, 2**31, 3 * 2**30, 2**32 - 1]
    words = np.concatenate(
        [np.array(edges, np.uint64), np.random.default_rng(0).integers(0, 2**32, 200_000)]
    ).astype(np.uint64)
    cosine, sine = np.empty(words.size, np.float32), np.empty(words.size, np.float32)
    _turn_all(words, cosine, sine)
    angle = 2 * np.pi * words.astype(np.int64).astype(np.int32) / 2.0**32  # signed word
    assert np.max(np.abs(cosine - np.cos(angle))) < 2e-7
    assert np.max(np.abs(sine - np.sin(angle))) < 2e-7


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [
        # Known-answer vectors of Philox4x32-10 published with Random123 (kat_vectors).
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_matches_the_known_answers(counter, key, expected):
    words = kernels.philox4x32(*(np.uint64(v) for v in (*counter, *key)))
    assert tuple(int(w) for w in words) == expected


KEY = (np.uint64(7), np.uint64(9))


def _complex_normals(size: int, key: tuple[np.uint64, np.uint64] = KEY) -> np.ndarray:
    out = np.zeros(size, np.complex64)
    values = np.empty(4 * ((size + 1) // 2), np.float32)
    indices = np.arange(size)
    start, length = _runs(indices)
    amplitude = np.ones(size, np.float32)
    kernels.fill_complex_normals(key, amplitude, start, length, values, out.view(np.float32))
    return out


def test_complex_normals_have_independent_standard_normal_parts():
    z = _complex_normals(400_000).astype(np.complex128)
    parts = np.concatenate([z.real, z.imag])
    assert stats.kstest(parts, "norm").pvalue > 1e-3
    assert parts.mean() == pytest.approx(0.0, abs=0.006)  # 5 sigma of 8e5 values
    assert parts.var() == pytest.approx(1.0, abs=0.008)
    assert abs(np.corrcoef(z.real, z.imag)[0, 1]) < 0.008
    assert abs(np.corrcoef(parts[:-1], parts[1:])[0, 1]) < 0.006  # neighbours independent
    # The phase is uniform and the squared modulus exponential with mean 2.
    assert stats.kstest(np.angle(z), "uniform", args=(-np.pi, 2 * np.pi)).pvalue > 1e-3
    assert stats.kstest(np.abs(z) ** 2, "expon", args=(0, 2)).pvalue > 1e-3
    assert np.abs(z).max() <= math.sqrt(2 * 33 * math.log(2))  # u >= 2^-33


def test_modes_land_on_their_runs_with_their_amplitudes():
    rng = np.random.default_rng(2)
    indices = np.sort(rng.choice(5000, 1777, replace=False))
    amplitude = rng.uniform(0.5, 2.0, indices.size).astype(np.float32)
    start, length = _runs(indices)
    assert length.sum() == indices.size
    out = np.zeros(5000, np.complex64)
    values = np.empty(4 * ((indices.size + 1) // 2), np.float32)
    key = (np.uint64(11), np.uint64(12))
    kernels.fill_complex_normals(key, amplitude, start, length, values, out.view(np.float32))
    unit = _complex_normals(indices.size, key)
    np.testing.assert_allclose(out[indices], unit * amplitude, rtol=3e-7, atol=0)
    assert np.count_nonzero(out) == indices.size


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 9])
def test_added_noise_of_any_length_is_the_prefix_of_a_longer_draw(size):
    longer, out = np.zeros(12, np.float32), np.zeros(size, np.float32)
    add_standard_normals(np.random.default_rng(4), longer, 0.5)
    add_standard_normals(np.random.default_rng(4), out, 0.5)
    np.testing.assert_array_equal(out, longer[:size])
    assert np.all(longer != 0)
    on_top = np.full(size, 10.0, np.float32)
    add_standard_normals(np.random.default_rng(4), on_top, 0.5)
    np.testing.assert_allclose(on_top - 10.0, out, atol=1e-6)


def test_a_field_is_the_same_after_its_buffers_were_reused():
    variance = np.zeros((8, 8, 5))
    variance[1:3, 1:3, 1:3] = 1.0 / 64
    field = CroppedGaussianField(4, 8, variance)
    first = field.draw(np.random.default_rng(9))
    field.draw(np.random.default_rng(10))
    np.testing.assert_array_equal(field.draw(np.random.default_rng(9)), first)


def test_the_workflow_parse_and_the_readers_do_not_load_numba():
    """The config check imports the line physics and training jobs read shards: numba's import
    (half a second) stays with the synthesis and the streamed map reads."""
    modules = "astroflow.cubes.config, astroflow.cubes.dataset, astroflow.maps.dataset"
    code = f"import sys, {modules}; print('numba' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
