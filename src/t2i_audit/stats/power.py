"""Planning: how many images (per group, per prompt) an audit needs to detect a given gap.

Two designs, both two-sided at level ``alpha``:

* ``one-sample``: a group's share of a class differs from a reference ``base`` by ``gap``
  (the audit's chi-square goodness-of-fit test). ``n = ((z_{1-a/2} sqrt(p0 q0) + z_{power}
  sqrt(p1 q1)) / gap)^2`` with p0 = base, p1 = base + gap (base - gap if that leaves [0, 1]).
* ``two-sample``: two groups differ by ``gap`` (chi-square test of the 2x2 table, no continuity
  correction). ``n per group = ((z_{1-a/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2)) /
  gap)^2``.

Then the realities of an audit: a probe with symmetric accuracy ``acc`` shrinks a gap to
``gap (2 acc - 1)`` (and pulls the base toward 1/2); abstentions inflate n by ``1 / (1 - abstain)``;
images of one prompt are correlated, inflating n by the design effect ``deff = 1 + (m - 1) icc``
for ``m`` images per prompt (Kish), or a ``design_effect`` given directly; ``groups`` > 1 applies a
Bonferroni split of alpha (conservative for the audit's Holm correction).
With prompts in a group (``prompts_per_group`` P, prompts as a sample), the quantiles are those of t
on P - 1 degrees of freedom, as the audit's interval uses, and P must be at least
``stats.clusters.MIN_PROMPTS``. :func:`designs` lists prompts x images per prompt for an ICC (e.g.
the one ``audit bias`` measures) and :func:`recommend` picks the cheapest within a prompt budget.
``simulate_power`` checks an answer by Monte Carlo with the same tests.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from t2i_audit.core.config import ConfigBase
from t2i_audit.errors import InputError
from t2i_audit.stats.clusters import MIN_PROMPTS


@dataclass
class PlanConfig(ConfigBase):
    gap: float
    power: float = 0.8
    alpha: float = 0.05
    base: float = 0.5
    design: str = "one-sample"
    design_effect: float | None = None
    icc: float = 0.0
    images_per_prompt: int | None = None
    prompts_per_group: int | None = None
    accuracy: float = 1.0
    abstain: float = 0.0
    groups: int = 1

    def validate(self) -> PlanConfig:
        def bad(msg):
            raise InputError(f"audit plan: {msg}")

        if not 0 < self.gap < 1:
            bad(f"--gap {self.gap} must be in (0, 1), e.g. 0.1 for 10 percentage points")
        if not 0 < self.power < 1:
            bad(f"--power {self.power} must be in (0, 1), e.g. 0.8")
        if not 0 < self.alpha < 1:
            bad(f"--alpha {self.alpha} must be in (0, 1), e.g. 0.05")
        if not 0 < self.base < 1:
            bad(f"--base {self.base} must be in (0, 1)")
        if self.base + self.gap > 1 and self.base - self.gap < 0:
            bad(f"--base {self.base} +/- --gap {self.gap} leaves [0, 1]; use a smaller gap")
        if self.design not in ("one-sample", "two-sample"):
            bad(f"--design {self.design!r}: use one-sample or two-sample")
        if self.design_effect is not None and self.design_effect < 1:
            bad(f"--design-effect {self.design_effect} must be >= 1")
        if not 0 <= self.icc < 1:
            bad(f"--icc {self.icc} must be in [0, 1)")
        if not 0.5 < self.accuracy <= 1:
            bad(f"--accuracy {self.accuracy} must be in (0.5, 1]: a probe at chance cannot detect a gap")
        if not 0 <= self.abstain < 1:
            bad(f"--abstain {self.abstain} must be in [0, 1)")
        if self.groups < 1:
            bad("--groups must be >= 1")
        for k in ("images_per_prompt", "prompts_per_group"):
            v = getattr(self, k)
            if v is not None and v < 1:
                bad(f"--{k.replace('_', '-')} must be >= 1")
        return self


@dataclass
class Plan:
    config: PlanConfig
    p0: float  # shares as the probe observes them
    p1: float
    n_independent: int  # images per group if images were independent and read perfectly
    design_effect: float
    images_per_group: int
    images_per_prompt: int | None
    prompts_per_group: int | None
    note: str

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["config"] = self.config.to_dict()
        return d


def _observed(p: float, acc: float) -> float:
    return acc * p + (1 - acc) * (1 - p)


def n_independent(p0: float, p1: float, alpha: float, power: float, design: str, df: int | None = None) -> float:
    """Images per group for independent images; ``df``: t quantiles on ``df`` degrees of freedom."""
    q = sps.norm.ppf if df is None else (lambda x: sps.t.ppf(x, df))
    za, zb = q(1 - alpha / 2), q(power)
    gap = abs(p1 - p0)
    if design == "one-sample":
        return ((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p1 * (1 - p1))) / gap) ** 2
    pbar = (p0 + p1) / 2
    return ((za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1)))
            / gap) ** 2


def plan(cfg: PlanConfig) -> Plan:
    cfg.validate()
    rho = cfg.icc
    p1_true = cfg.base + cfg.gap if cfg.base + cfg.gap <= 1 else cfg.base - cfg.gap
    p0, p1 = _observed(cfg.base, cfg.accuracy), _observed(p1_true, cfg.accuracy)
    alpha = cfg.alpha / cfg.groups
    m, P = cfg.images_per_prompt, cfg.prompts_per_group
    if P is not None and P < MIN_PROMPTS:
        raise InputError(f"audit plan: {P} prompts per group; prompts-as-sample intervals need >= {MIN_PROMPTS} "
                         "(write more paraphrases)")
    df = P - 1 if P is not None and (rho > 0 or cfg.design_effect is not None) else None
    n0 = n_independent(p0, p1, alpha, cfg.power, cfg.design, df) / (1 - cfg.abstain)
    if cfg.design_effect is not None:
        deff = cfg.design_effect
        n = math.ceil(n0 * deff)
        if m is None and P is not None:
            m = math.ceil(n / P)
        note = f"design effect {deff:g} given"
    elif m is not None or P is None:
        deff = 1 + ((m or 1) - 1) * rho
        n = math.ceil(n0 * deff)
        note = (f"Kish design effect 1 + ({m} - 1) * icc {rho:g}" if m else
                "independent images (give --images-per-prompt and --icc for clustered prompts)")
    else:  # prompts fixed: solve m * P = n0 * (1 + (m - 1) rho) for m
        if P <= n0 * rho:
            raise InputError(f"audit plan: {P} prompts per group cannot reach the power with icc {rho:g} "
                             f"at any number of images per prompt; use more than {math.ceil(n0 * rho)} "
                             "prompts per group")
        m = max(1, math.ceil(n0 * (1 - rho) / (P - n0 * rho)))
        deff = 1 + (m - 1) * rho
        n = max(math.ceil(n0 * deff), m * P)
        note = f"Kish design effect 1 + ({m} - 1) * icc {rho:g}, {P} prompts per group, t on {P - 1} df"
    if P is None and m is not None:
        P = math.ceil(n / m)
    if m is not None and P is not None:
        n = max(n, m * P) if cfg.design_effect is None else n
    return Plan(cfg, p0, p1, math.ceil(n0 * (1 - cfg.abstain)), deff, int(n), m, P, note)


PROMPT_OPTIONS = (5, 8, 10, 12, 16, 20, 30, 40)


def designs(cfg: PlanConfig, prompts=PROMPT_OPTIONS) -> list[Plan]:
    """Plans for each number of prompts per group in ``prompts`` (images per prompt solved for
    ``cfg.icc``); prompt counts that cannot reach the power at any images per prompt are left out."""
    out = []
    for P in prompts:
        try:
            out.append(plan(dataclasses.replace(cfg, prompts_per_group=int(P), images_per_prompt=None)))
        except InputError:
            continue
    return out


def recommend(cfg: PlanConfig, max_prompts: int = 12) -> tuple[Plan | None, list[Plan]]:
    """The design with the fewest images among those with at most ``max_prompts`` prompts per group
    (more paraphrases always need fewer images once icc > 0), and every design of :func:`designs`
    up to ``max_prompts`` and beyond for comparison."""
    opts = sorted(set(PROMPT_OPTIONS) | {max_prompts})
    table = designs(cfg, [P for P in opts if P >= MIN_PROMPTS])
    ok = [p for p in table if p.prompts_per_group <= max_prompts]
    return (min(ok, key=lambda p: (p.images_per_group, p.prompts_per_group)) if ok else None), table


def simulate_power(pl: Plan, reps: int = 2000, seed: int = 0, test: str = "chi2") -> float:
    """Monte Carlo power of the planned design: prompts with beta-distributed shares (icc), a
    symmetric probe error, abstentions, then the audit's test at level alpha / groups
    (one-sample: chi-square goodness of fit against the base, with a first-order Rao-Scott
    division by the estimated design effect when images are clustered; two-sample: 2x2 chi-square
    on counts divided by the estimated design effect)."""
    cfg = pl.config
    rng = np.random.default_rng(seed)
    m = pl.images_per_prompt or 1
    P = pl.prompts_per_group or pl.images_per_group
    alpha = cfg.alpha / cfg.groups
    p_true1 = cfg.base + cfg.gap if cfg.base + cfg.gap <= 1 else cfg.base - cfg.gap

    def draw(p: float) -> np.ndarray:  # (reps, P) answered counts: [class 1 count, answered]
        if cfg.icc > 0 and m > 1:
            s = 1 / cfg.icc - 1
            share = rng.beta(p * s, (1 - p) * s, size=(reps, P))
        else:
            share = np.full((reps, P), p)
        n_ans = rng.binomial(m, 1 - cfg.abstain, size=(reps, P))
        true1 = rng.binomial(n_ans, share)
        read1 = rng.binomial(true1, cfg.accuracy) + rng.binomial(n_ans - true1, 1 - cfg.accuracy)
        return np.stack([read1, n_ans], -1)

    def deff_hat(c: np.ndarray) -> np.ndarray:
        if m == 1 or cfg.icc == 0 and cfg.design_effect is None:
            return np.ones(c.shape[0])
        x, n = c[..., 0].astype(float), c[..., 1].astype(float)
        ph = x.sum(1) / np.maximum(n.sum(1), 1)
        nbar = n.mean(1)
        # ratio estimator variance of ph over clusters vs binomial variance
        v_cl = ((x - ph[:, None] * n) ** 2).sum(1) / (P * (P - 1) * nbar ** 2)
        v_bin = ph * (1 - ph) / np.maximum(n.sum(1), 1)
        return np.maximum(1.0, v_cl / np.maximum(v_bin, 1e-12))

    if cfg.design == "one-sample":
        c = draw(p_true1)
        x, n = c[..., 0].sum(1), c[..., 1].sum(1)
        e1 = n * pl.p0
        stat = (x - e1) ** 2 / e1 + ((n - x) - (n - e1)) ** 2 / (n - e1)
        stat = stat / deff_hat(c)
    else:
        ca, cb = draw(cfg.base), draw(p_true1)
        xa, na = ca[..., 0].sum(1), ca[..., 1].sum(1)
        xb, nb = cb[..., 0].sum(1), cb[..., 1].sum(1)
        pp = (xa + xb) / (na + nb)
        stat = (xa / na - xb / nb) ** 2 / (pp * (1 - pp) * (1 / na + 1 / nb))
        stat = stat / np.maximum(deff_hat(ca), deff_hat(cb))
    clustered = m > 1 and (cfg.icc > 0 or cfg.design_effect is not None)
    pv = sps.f.sf(stat, 1, P - 1) if clustered and P > 1 else sps.chi2.sf(stat, 1)  # t^2 on P - 1 df
    return float(np.mean(pv < alpha))


def labels_needed(agreement, width, share=0.5, n_images=None, alpha=0.05) -> int:
    """Labels per group for a PPI++ share interval of total ``width`` (CLT, level 1 - alpha).

    Model (binary view of one class c): y, yhat in {0, 1} with share ``s`` = P(y = 1), and the probe
    disagrees with the label (a misreading or an abstention) at rate ``d = 1 - agreement``.
    Assumptions: errors balanced (P(yhat = 1) = s), every disagreement involves class c (exact for
    two classes, conservative otherwise); default s = 0.5 is the worst case. Then
    ``sigma^2 = s(1-s)``, ``cov(y, yhat) = sigma^2 - d/2`` and, with the tuned
    ``lam = cov / ((1 + n/N) sigma^2)``, the PPI++ variance is
    ``V(n) = [sigma^2 - cov^2 / (sigma^2 (1 + n/N))] / n``. With N -> inf (``n_images`` None):
    ``n = ceil(4 z^2 (d - d^2 / (4 sigma^2)) / width^2)`` (= 4 z^2 a(1-a)/width^2 at s = 0.5).
    With ``n_images`` the smallest n with ``2 z sqrt(V(n)) <= width``, N = n_images - n."""
    if not 0 < agreement <= 1:
        raise InputError(f"agreement must be in (0, 1] (got {agreement}); measure it on labelled images")
    if not 0 < width < 1:
        raise InputError(f"width must be in (0, 1) (got {width}); e.g. 0.1 for +-5 pp")
    if not 0 < share < 1:
        raise InputError(f"share must be in (0, 1) (got {share}); 0.5 is the worst case")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1) (got {alpha})")
    z2 = sps.norm.ppf(1 - alpha / 2) ** 2
    s2, d = share * (1 - share), 1.0 - agreement
    cov = max(s2 - d / 2, 0.0)
    if n_images is None:
        return max(int(np.ceil(4 * z2 * (s2 - cov ** 2 / s2) / width ** 2 - 1e-9)), 2)
    n = np.arange(2, int(n_images) - 1, dtype=np.float64)
    v = (s2 - cov ** 2 / (s2 * (1 + n / (n_images - n)))) / n
    ok = np.flatnonzero(4 * z2 * v <= width ** 2)
    if not ok.size:
        raise InputError(f"width {width} is out of reach with {n_images} images at agreement {agreement}; "
                         "widen the target or audit more images")
    return int(n[ok[0]])
