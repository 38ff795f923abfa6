"""Synthetic prestellar cores, their mock position-position-velocity cubes, and FITS I/O.

Axis order everywhere inside the package is the numpy order of a FITS cube: a PPV cube is
(v, y, x), a 3D field or a line-of-sight profile cube is (z, y, x) with z along the line of
sight, increasing away from the observer. Units are fixed per quantity: number density of H2
in cm^-3, column density in cm^-2, velocities in km/s (radio convention, positive receding),
brightness temperature in K, lengths in pc.
"""
