"""Embedding cache: round trip, counters, reference statistics, disabled mode."""

from __future__ import annotations

import numpy as np
import pytest

from t2i_audit.errors import InputError
from t2i_audit.evals.features.cache import ENV_VAR, EmbeddingCache, default_cache_dir, embed_cached, text_key


def test_round_trip_and_counters(tmp_path):
    c = EmbeddingCache(tmp_path)
    rng = np.random.default_rng(0)
    vecs = {f"k{i}": rng.normal(size=7).astype(np.float32) for i in range(5)}
    c.put_many("ex@1", vecs)
    got = c.get_many("ex@1", ["k0", "k3", "zz"])
    assert set(got) == {"k0", "k3"} and np.array_equal(got["k3"], vecs["k3"])
    assert (c.stats.hits, c.stats.misses) == (2, 1)
    assert c.get_many("ex@2", ["k0"]) == {}  # keyed by extractor id too
    # a second process (new connection) sees the committed rows
    assert EmbeddingCache(tmp_path).count("ex@1") == 5


def test_embed_cached_embeds_each_content_once(tmp_path):
    calls = []

    def embed(batch):
        calls.append(len(batch))
        return np.stack([np.full(3, float(len(x)), np.float32) for x in batch])

    texts = ["a", "bb", "a", "ccc", "bb"]
    keys = [text_key(t) for t in texts]
    c = EmbeddingCache(tmp_path)
    out = embed_cached(c, "len", keys, lambda i: texts[i], embed, batch_size=2)
    assert out.shape == (5, 3) and out[:, 0].tolist() == [1, 2, 1, 3, 2]
    assert sum(calls) == 3 and c.stats.forward_passes == 2  # 3 distinct texts, batches of 2
    c2 = EmbeddingCache(tmp_path)
    again = embed_cached(c2, "len", keys, lambda i: texts[i], embed)
    assert np.array_equal(again, out) and c2.stats.forward_passes == 0 and c2.stats.hits == 5


def test_nan_features_are_rejected_and_not_stored(tmp_path):
    c = EmbeddingCache(tmp_path)
    with pytest.raises(InputError, match="NaN/Inf"):
        embed_cached(c, "bad", ["x"], lambda i: i, lambda b: np.full((len(b), 2), np.nan, np.float32))
    assert c.count("bad") == 0


def test_disabled_cache_and_env_dir(tmp_path, monkeypatch):
    c = EmbeddingCache(tmp_path / "never", enabled=False)
    out = embed_cached(c, "e", ["a", "b"], lambda i: i, lambda b: np.ones((len(b), 2), np.float32))
    assert out.shape == (2, 2) and c.stats.forward_passes == 1 and not (tmp_path / "never").exists()
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"


def test_arrays_round_trip(tmp_path):
    c = EmbeddingCache(tmp_path)
    assert c.get_arrays("moments|abc|ex") is None
    c.put_arrays("moments|abc|ex", {"n": np.array(3), "sum": np.arange(4.0)})
    got = c.get_arrays("moments|abc|ex")
    assert int(got["n"]) == 3 and np.array_equal(got["sum"], np.arange(4.0))
