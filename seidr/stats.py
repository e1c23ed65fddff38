"""The estimators behind the report's intervals and tests, on scipy's well-kept implementations.

Every resampling uses one fixed seed, so a report drawn twice from the same jobs is the same."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
RESAMPLES = 2000
RESAMPLING_SEED = 20230715  # fixed: the same jobs always give the same intervals


def proportion_interval(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson interval of a success rate (one seed: problems solved out of problems run)."""
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


def mean_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """95 % percentile bootstrap interval of a mean over independent units (problems); None for
    fewer than two units, where no interval exists."""
    sample = np.asarray(values, dtype=float)
    if sample.size < 2:
        return None
    if np.all(sample == sample[0]):  # every resample has the same mean
        return float(sample[0]), float(sample[0])
    result = stats.bootstrap((sample,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                             method="percentile", rng=np.random.default_rng(RESAMPLING_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_band(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Pointwise 95 % bootstrap band of the column means of `matrix` (rows: problems, resampled
    whole; columns: points of a curve). None for fewer than two rows."""
    if matrix.shape[0] < 2:
        return None
    constant = np.all(matrix == matrix[0], axis=0)
    # resamples in batches: all at once would hold resamples × problems × points floats
    result = stats.bootstrap((matrix,), np.mean, axis=0, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                             batch=100, method="percentile", rng=np.random.default_rng(RESAMPLING_SEED))
    low = np.where(constant, matrix[0], result.confidence_interval.low)
    high = np.where(constant, matrix[0], result.confidence_interval.high)
    return low, high


def pass_at_k(attempts: int, successes: int, k: int) -> float:
    """Chen et al. (2021)'s unbiased estimate of the chance that at least one of k attempts
    succeeds, from `attempts` attempts of which `successes` succeeded: 1 - C(n-c, k) / C(n, k)."""
    if not 0 < k <= attempts:
        raise ValueError(f"pass@{k} needs 1 <= k <= attempts ({attempts})")
    return 1.0 - math.comb(attempts - successes, k) / math.comb(attempts, k)


def sign_test(higher: int, lower: int) -> float:
    """Two-sided exact sign test on paired outcomes: `higher` pairs favour one side, `lower` the
    other, ties carry no information. With one seed per problem this is the exact McNemar test
    (a binomial test on the discordant pairs)."""
    if higher + lower == 0:
        return 1.0
    return float(stats.binomtest(higher, higher + lower, 0.5).pvalue)


def problems_to_separate(problems: int, higher: int, lower: int, limit: int = 100) -> int | None:
    """Roughly how many problems a sign test would need to call a difference real, if the share
    of problems where the sides differ, and which way they differ, stayed as observed; None when
    the sides differ equally often both ways (no number of problems would), or beyond `limit`
    times the problems run."""
    discordant = higher + lower
    if problems == 0 or discordant == 0 or higher == lower:
        return None
    share, favour = discordant / problems, max(higher, lower) / discordant
    for total in range(problems, problems * limit + 1):
        pairs = round(share * total)
        if pairs and sign_test(round(favour * pairs), pairs - round(favour * pairs)) < ALPHA:
            return total
    return None
