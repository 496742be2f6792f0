"""PPI++ share of right (image, question) pairs with a judge's *soft* prediction.

The bias engine's estimator (``stats.labelled.ppi_shares``) takes hard probe readings through count
tables. A judge with token probabilities gives more: f = P(the pair is right) = p_right in [0, 1].
PPI++ is defined for any prediction f (Angelopoulos, Duchi & Zrnic 2023); it stays unbiased whatever
f is, and a prediction that tracks the label more closely (higher correlation rho) narrows the error,
which is about sqrt((1 - rho^2) Var(Y) / n) with n labels. So the soft P(right) is used where the
judge gives soft scores, and the hard answer 1[p_right >= 0.5] for text-only judges.

Two classes, c in {right, wrong}, with f_right = f, f_wrong = 1 - f, Y_c = 1[label is c] (0 for a
label 'unsure'): ``theta_c = lam_c mean_unl(f_c) + mean_lab(Y_c - lam_c f_c)``, ``lam_c =
cov_lab(Y_c, f_c) / ((1 + n/N) var_all(f_c))`` clipped to [0, 1] (the "element" tuning of
``stats.labelled``), then right / (right + wrong) (the share among pairs a labeller can read). With
f in {0, 1} this is exactly ``ppi_shares`` on the two-class tables (tested).

Everything is computed from per-prompt sums, so cluster-bootstrap replicates (prompts resampled,
labelled and unlabelled pairs of a prompt together) are one matrix product.
"""

from __future__ import annotations

import numpy as np

# per-prompt sums: n, N, sum Y_r, sum Y_w, sum f (lab), sum Y_r f, sum Y_w f, sum f^2 (lab), sum f (unl), sum f^2 (unl)
_COLS = 10


def prompt_sums(f: np.ndarray, truth: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """(P, 10) sums per prompt. ``truth``: 0 right, 1 wrong, -1 unsure label, any other value (-9):
    not labelled."""
    f = np.asarray(f, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    _, inv = np.unique(np.asarray(prompts), return_inverse=True)
    lab = (truth == 0) | (truth == 1) | (truth == -1)
    yr, yw = (truth == 0).astype(np.float64), (truth == 1).astype(np.float64)
    lf, uf = np.where(lab, f, 0.0), np.where(lab, 0.0, f)
    cols = np.stack([lab.astype(np.float64), (~lab).astype(np.float64), yr, yw, lf, yr * f, yw * f, lf * f,
                     uf, uf * f], axis=1)
    out = np.zeros((int(inv.max()) + 1 if inv.size else 0, _COLS))
    np.add.at(out, inv, cols)
    return out


def _lam(n, N, sy, sf, syf, sff, uf, uff):
    """The power-tuned lambda of one class, clipped to [0, 1]."""
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = syf / n - (sy / n) * (sf / n)
        m, s, s2 = n + N, sf + uf, sff + uff
        var = (s2 - s * s / m) / (m - 1)
        lam = cov / ((1 + n / N) * var)
        return np.clip(np.where(np.isfinite(lam), lam, 0.0), 0.0, 1.0)


def _class(n, N, sy, sf, syf, sff, uf, uff):
    lam = _lam(n, N, sy, sf, syf, sff, uf, uff)
    with np.errstate(invalid="ignore", divide="ignore"):
        unl = np.divide(uf, N, out=np.zeros_like(uf), where=N > 0)
        return lam * unl + sy / n - lam * sf / n


def _class_sums(sums: np.ndarray):
    """(right, wrong) argument tuples of :func:`_class`; f_wrong = 1 - f, its sums from f's."""
    n, N, yr, yw, sf, yrf, ywf, sff, uf, uff = np.moveaxis(np.asarray(sums, dtype=np.float64), -1, 0)
    return ((n, N, yr, sf, yrf, sff, uf, uff),
            (n, N, yw, n - sf, yw - ywf, n - 2 * sf + sff, N - uf, N - 2 * uf + uff))


def ppi_sizes(sums: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(lambda per class, unlabelled pairs, labelled pairs) of the total sums: what the interval's
    binomial floor stands on (``stats.clusters.ppi_binomial_n``)."""
    r, w = _class_sums(np.asarray(sums, dtype=np.float64).sum(0))
    return np.array([_lam(*r), _lam(*w)], dtype=np.float64), float(r[1]), float(r[0])


def right_share(sums: np.ndarray) -> np.ndarray:
    """PPI++ share of right pairs among readable ones from summed columns ``(..., 10)``."""
    r, w = _class_sums(sums)
    right, wrong = _class(*r), _class(*w)
    right, wrong = np.clip(right, 0, None), np.clip(wrong, 0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        return right / (right + wrong)
