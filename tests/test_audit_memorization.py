"""Memorization audit finds planted copies on small data."""

import numpy as np
import pytest

from t2i_audit.audits.memorization.memorization_audit import (
    MemorizationConfig,
    audit_memorization,
    make_copies,
)
from t2i_audit.errors import InputError
from t2i_audit.stats.resampling import wilson_interval
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng

W = {"pair": 0.5, "multi": 0.5}


def _renders(n, seed):
    spec = BiasSpec.load()
    return [render(sample_scene(scene_rng(seed, i), spec, kind_weights=W)) for i in range(n)]


def test_planted_copies_found_and_matched_to_their_source():
    train, other = _renders(300, 1), _renders(200, 2)
    rng = np.random.default_rng(0)
    src = rng.choice(300, 12, replace=False)
    planted, kinds = make_copies([train[i] for i in src], rng)
    assert set(kinds) == {"exact", "noise", "crop"}
    ids = [f"o{i}" for i in range(200)] + [f"p{i}" for i in range(12)]
    pairs, summ = audit_memorization(other + planted, train, MemorizationConfig(n_calibration=100),
                                     generated_ids=ids, train_ids=[f"t{i}" for i in range(300)])
    by = pairs.set_index("image_id")
    assert by.loc[[f"p{i}" for i in range(12)], "near_copy"].all()
    assert [by.loc[f"p{i}", "pixel_train_id"] for i in range(12)] == [f"t{i}" for i in src]
    assert by.loc[[f"o{i}" for i in range(200)], "near_copy"].mean() <= 0.03
    assert summ["near_copies"] == int(pairs.near_copy.sum())
    assert summ["rate_ci_low"] <= summ["rate"] <= summ["rate_ci_high"]
    assert pairs.pixel_score.is_monotonic_decreasing


def test_clip_space_with_a_callable_extractor():
    class Flat:  # a stand-in feature extractor: downsampled pixels
        id = "flat"

        def embed_images(self, ims):
            import torch

            return torch.tensor(np.stack([np.asarray(i.resize((8, 8))).ravel() / 255.0 for i in ims]))

    train = _renders(60, 3)
    pairs, summ = audit_memorization(train[:5], train, MemorizationConfig(n_calibration=30, space="clip"),
                                     extractor=Flat())
    assert pairs.near_copy.all() and "clip" in summ["thresholds"]


def test_wilson_and_errors():
    lo, hi = wilson_interval(0, 100)
    assert lo == pytest.approx(0, abs=1e-12) and 0.03 < hi < 0.04
    with pytest.raises(InputError):
        audit_memorization([], [])
    with pytest.raises(InputError, match="clip"):
        audit_memorization(_renders(3, 0), _renders(3, 1), MemorizationConfig(space="clip"))
    c = MemorizationConfig(crop_fractions=(0.05,))
    assert MemorizationConfig.from_dict(c.to_dict()) == c
