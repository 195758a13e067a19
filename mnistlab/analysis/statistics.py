"""Is run B really better than run A? Paired tests on the same test digits. NumPy and SciPy only.

Two runs tested on the same images are *paired*: what matters is the digits on which they
disagree. :func:`mcnemar` counts the digits only A gets right and only B gets right and
asks how likely so uneven a split would be if both were equally good (McNemar's exact
test: a two-sided binomial test of the discordant pairs at 1/2).
:func:`bootstrap_difference` gives a 95 % interval for ``accuracy(B) - accuracy(A)`` by
resampling the test digits (paired: a digit is drawn with both runs' answers).
:func:`explain` says both in one sentence.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.stats import binomtest


@dataclasses.dataclass(frozen=True)
class McNemar:
    only_a: int  # digits A gets right and B wrong
    only_b: int  # digits B gets right and A wrong
    both: int
    neither: int
    p_value: float  # two-sided exact (binomial) p-value; 1.0 when the runs never disagree

    @property
    def n(self) -> int:
        return self.only_a + self.only_b + self.both + self.neither

    @property
    def discordant(self) -> int:
        return self.only_a + self.only_b


@dataclasses.dataclass(frozen=True)
class Interval:
    difference: float  # accuracy(B) - accuracy(A) on the test set
    low: float
    high: float
    level: float
    resamples: int


def _correct(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of right/wrong flags, got shape {array.shape}")
    if array.dtype != bool:
        if not np.isin(array, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans (or 0/1), got other values")
        array = array.astype(bool)
    return array


def _pair(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _correct("correct_a", correct_a), _correct("correct_b", correct_b)
    if a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must describe the same test digits, got {a.size} and {b.size}")
    return a, b


def mcnemar(correct_a, correct_b) -> McNemar:
    """McNemar's exact test on paired right/wrong flags of two runs on the same digits."""
    a, b = _pair(correct_a, correct_b)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    both, neither = int((a & b).sum()), int((~a & ~b).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(binomtest(only_b, discordant, 0.5, alternative="two-sided").pvalue)
    return McNemar(only_a, only_b, both, neither, min(p, 1.0))


def bootstrap_difference(correct_a, correct_b, resamples: int = 10_000, level: float = 0.95,
                         seed: int = 0) -> Interval:
    """A percentile bootstrap interval of ``accuracy(B) - accuracy(A)``, resampling digits in pairs.

    Each digit contributes -1 (only A right), 0 (same answer quality) or +1 (only B right);
    drawing n digits with replacement is drawing those three counts from a multinomial, so
    the bootstrap is exact and cheap for any test-set size.
    """
    a, b = _pair(correct_a, correct_b)
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or not 100 <= resamples <= 10**6:
        raise ValueError(f"resamples must be an integer in [100, 1000000], got {resamples!r}")
    if not 0.5 <= level < 1:
        raise ValueError(f"level must be in [0.5, 1), got {level!r}")
    n = a.size
    if n == 0:
        raise ValueError("the runs must have at least one test digit in common")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, [only_a / n, only_b / n, (n - only_a - only_b) / n], size=resamples)
    differences = (counts[:, 1] - counts[:, 0]) / n
    tail = (1 - level) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return Interval((only_b - only_a) / n, float(low), float(high), level, int(resamples))


def _points(value: float) -> str:
    return f"{value * 100:+.2f}".replace("-", "−")


def _chance(p_value: float) -> str:
    """A probability as a student reads it: ``less than 0.1%``, ``4.2%``, ``38%``."""
    if p_value < 0.001:
        return "less than 0.1%"
    return f"{p_value:.1%}" if p_value < 0.05 else f"{p_value:.0%}"


def explain(test: McNemar, interval: Interval, a: str = "A", b: str = "B") -> str:
    """The two results in one plain sentence (plain text: the caller escapes it).

    E.g. "Of the 49 test digits that only one of them gets right, run B gets 8 and run A 41: if
    both were equally good, a split this uneven would happen by chance less than 0.1% of the
    time, so run A is very likely really better (run B minus run A: -3.30 accuracy points, 95%
    interval -4.70 to -1.90)."
    """
    if test.discordant == 0:
        return f"{a} and {b} get exactly the same test digits right, so the test set cannot tell them apart."
    better = b if test.only_b > test.only_a else a
    if test.only_a == test.only_b:
        verdict = "neither is better on this test set"
    elif test.p_value < 0.05:
        verdict = (f"if both were equally good, a split this uneven would happen by chance {_chance(test.p_value)} "
                   f"of the time, so {better} is very likely really better")
    else:
        verdict = (f"even if both were equally good, a split at least this uneven would happen by chance "
                   f"{_chance(test.p_value)} of the time, so the difference may well be luck")
    digits = "test digit that only one of them gets" if test.discordant == 1 else \
        "test digits that only one of them gets"
    return (f"Of the {test.discordant:,} {digits} right, {b} gets {test.only_b:,} and {a} {test.only_a:,}: "
            f"{verdict} ({b} minus {a}: {_points(interval.difference)} accuracy points, "
            f"{interval.level:.0%} interval {_points(interval.low)} to {_points(interval.high)}).")
