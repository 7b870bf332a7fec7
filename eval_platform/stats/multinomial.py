"""Exact multinomial(``n``, uniform) counts drawn fast, as a thinned Poisson draw with a uniform top-up.

The resampling weights of :mod:`eval_platform.stats.bootstrap` (its module docstring derives the method):
i.i.d. ``Poisson(lam)`` counts from one random byte per example, the rare bytes refined from the residual
distribution, then ``n - total`` further uniform draws; a draw whose total exceeds ``n`` is redrawn.
"""

from __future__ import annotations

import math

import numpy as np


class CountSampler:
    """Multinomial(``n``, uniform over ``n`` cells) counts as uint8, exact (see the module docstring)."""

    def __init__(self, n: int, lam: float | None = None):
        self.n = n
        # any lam gives exact counts; this one makes a redraw rare (P(T > n) ~ P(Z > 3)) and the top-up small
        lam = max(0.0, 1.0 - 3.0 / math.sqrt(n)) if lam is None else lam
        self.lam = lam
        if lam > 0:
            terms = [math.exp(-lam)]
            while terms[-1] > 1e-30 or len(terms) <= lam + 1:
                terms.append(terms[-1] * lam / len(terms))
            pmf = np.array(terms)
            self.pmf = pmf / pmf.sum()
            quota = np.floor(256 * self.pmf).astype(np.int64)
            self.pure = int(quota.sum())  # bytes below this map to a count directly
            # count = #{k >= 1: byte >= start of the block of count k}; one comparison per distinct start
            starts = np.cumsum(quota)[:-1]
            starts = starts[starts < self.pure]
            self.cuts = [(int(c), int(m)) for c, m in zip(*np.unique(starts, return_counts=True), strict=True)]
            residual = np.clip(self.pmf - quota / 256.0, 0.0, None)
            self.residual = _Residual(residual / residual.sum()) if self.pure < 256 else None

    def draw(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Fill ``out`` (uint8, length ``n``) with one multinomial draw."""
        n = self.n
        total = n + 1
        while total > n:
            if self.lam > 0:
                total = self._poisson(rng, out)
            else:
                out[:] = 0
                total = 0
        if total < n:  # the top-up: n - total further uniform draws
            extra = np.sort(rng.integers(0, n, n - total))
            out[extra] += 1  # a position drawn k times gets 1 here ...
            again = extra[1:][extra[1:] == extra[:-1]]
            if again.size:
                np.add.at(out, again, 1)  # ... and k - 1 here

    def _poisson(self, rng: np.random.Generator, out: np.ndarray) -> int:
        n = self.n
        raw = rng.bit_generator.random_raw((n + 7) // 8).astype("<u8", copy=False).view(np.uint8)[:n]
        out[:] = 0
        total = 0
        for cut, times in self.cuts:
            mask = raw >= cut
            view = mask.view(np.uint8)
            for _ in range(times):
                out += view
            total += times * int(np.count_nonzero(mask))
        if self.residual is not None:
            rare = np.flatnonzero(raw >= self.pure)
            if rare.size:
                total -= int(out[rare].sum(dtype=np.int64))
                values = self.residual.sample(rng, rare.size)
                out[rare] = values
                total += int(values.sum(dtype=np.int64))
        return total


class _Residual:
    """A small discrete distribution sampled byte by byte (pure part, then the residual recursively)."""

    def __init__(self, pmf: np.ndarray, depth: int = 0):
        self.pmf = pmf
        self.cdf = np.cumsum(pmf)
        quota = np.floor(256 * pmf).astype(np.int64)
        self.pure = int(quota.sum())
        self.table = np.repeat(np.arange(pmf.size), quota).astype(np.uint8)
        residual = np.clip(pmf - quota / 256.0, 0.0, None)
        self.next: _Residual | None = None
        if self.pure < 256 and residual.sum() > 0 and depth < 6:
            self.next = _Residual(residual / residual.sum(), depth + 1)
        elif self.pure < 256:
            self.pure = 0  # give up on bytes: inverse CDF in floating point

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.pure == 0:
            return np.minimum(np.searchsorted(self.cdf, rng.random(size), side="right"), self.pmf.size - 1).astype(np.uint8)
        raw = np.frombuffer(rng.bytes(size), dtype=np.uint8)
        values = np.empty(size, dtype=np.uint8)
        pure = raw < self.pure
        values[pure] = self.table[raw[pure]]
        rest = np.flatnonzero(~pure)
        if rest.size:
            assert self.next is not None  # 0 < pure < 256: the constructor built the deeper level
            values[rest] = self.next.sample(rng, rest.size)
        return values
