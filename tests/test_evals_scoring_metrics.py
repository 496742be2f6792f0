"""FD of bootstrap replicates against a fixed reference (scoring_metrics.fd_to_reference) agrees with
the plain Fréchet distance, including singular covariances."""

from __future__ import annotations

import numpy as np
import pytest

import t2i_audit.evals.metrics.distribution as md
from t2i_audit.errors import InputError
from t2i_audit.evals.metrics.registry import fd_to_reference


def test_fd_to_reference_matches_frechet_distance():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(300, 24)) @ rng.normal(size=(24, 24))
    ref_m = md.GaussianMoments.of(ref)
    fd = fd_to_reference(ref_m)
    for n, shift in ((200, 0.0), (40, 0.5), (12, 2.0)):  # n=12 < d: a singular generated covariance
        gen = rng.normal(size=(n, 24)) + shift
        want = md.frechet_distance(gen, ref_m)
        assert fd(gen) == pytest.approx(want, rel=1e-8, abs=1e-8)
        assert fd(md.GaussianMoments.of(gen)) == pytest.approx(want, rel=1e-8, abs=1e-8)
    with pytest.raises(InputError, match="dimensions differ"):
        fd(rng.normal(size=(10, 5)))
