"""The in-process memo of oracle readings and embeddings (audits.engine.memo): keyed by image content,
exact (the same values as the uncached path), bounded, and safe against callers editing its results."""

import numpy as np
import pytest
import torch
from PIL import Image

from t2i_audit.audits.engine import reading_memo as memo
from t2i_audit.audits.probes.attribute_probes import OracleProbe, ProbeSpec, ZeroShotProbe, _normalise
from t2i_audit.audits.probes.probe_calibration import pictoworld_people


@pytest.fixture(autouse=True)
def _fresh_memo():
    memo.clear()
    yield
    memo.clear()


@pytest.fixture(scope="module")
def people():
    return pictoworld_people(12, seed=5)[0]


def _copies(images):
    """New image objects with the same pixels (what a second load of the same files gives)."""
    return [Image.frombytes(im.mode, im.size, im.tobytes()) for im in images]


class BatchExtractor:
    """Embeds in chunks of ``batch_size``; each embedding depends on the rest of its batch (as float32
    round-off makes a real CLIP's do), so only batch-exact memoisation reproduces it."""

    id = "batchy"

    def __init__(self, batch_size=4):
        self.batch_size = batch_size
        self.calls = []

    def embed_images(self, images):
        self.calls.append(len(images))
        outs = []
        for s in range(0, len(images), self.batch_size):
            x = torch.tensor(np.stack([np.asarray(im, dtype=np.float32).mean((0, 1)) for im in
                                       images[s:s + self.batch_size]]))
            outs.append(x + 1e-3 * x.mean(0, keepdim=True) + 1.0)
        return torch.cat(outs)

    def embed_texts(self, texts):
        return torch.eye(3)[: len(texts)] + 0.1


def test_content_key_reads_pixels_not_objects():
    a = Image.new("RGB", (8, 8), (10, 20, 30))
    assert memo.content_key(a) == memo.content_key(_copies([a])[0])
    assert memo.content_key(a) != memo.content_key(Image.new("RGB", (8, 8), (10, 20, 31)))
    assert memo.content_key(a) != memo.content_key(Image.new("RGB", (4, 16), (10, 20, 30)))
    assert memo.content_key(a) != memo.content_key(a.convert("RGBA"))
    p, q = Image.new("P", (4, 4), 0), Image.new("P", (4, 4), 0)
    p.putpalette([255, 0, 0] * 256)
    q.putpalette([0, 0, 255] * 256)
    assert memo.content_key(p) != memo.content_key(q)  # same indices, other colours
    arr = np.zeros((4, 4, 3), np.uint8)
    assert memo.content_key(arr) == memo.content_key(arr.copy())
    assert memo.content_key(arr) != memo.content_key(arr.astype(np.float32))
    assert memo.content_key(np.array([None])) is None and memo.content_key("x.png") is None


def test_lru_bounds_count_and_bytes_and_keeps_recent():
    m = memo.LRUMemo(max_entries=3)
    for k in "abc":
        m.put(k, k)
    assert m.get("a") == "a"  # now the most recent
    m.put("d", "d")
    assert len(m) == 3 and m.get("b") is None and m.get("a") == "a"
    b = memo.LRUMemo(max_entries=100, max_bytes=3 * 80)
    for i in range(10):
        b.put(i, np.zeros(10))  # 80 bytes each
    assert len(b) == 3 and b.nbytes == 240 and b.get(6) is None and b.get(9) is not None
    with pytest.raises(ValueError):
        memo.LRUMemo(max_entries=0)


def test_memo_read_once_per_content_and_copies(people):
    calls = []

    def reader(im):
        calls.append(1)
        return {"mean": float(np.asarray(im).mean()), "details": {"bg": [1, 2]}}

    first = [memo.memo_read(reader, im) for im in people]
    again = [memo.memo_read(reader, im) for im in _copies(people) + people]
    distinct = len({memo.content_key(im) for im in people})
    assert len(calls) == distinct
    assert first == [reader(im) for im in people] and again == first + first
    first[0]["details"]["bg"].append(99)  # a caller editing its result ...
    assert memo.memo_read(reader, people[0])["details"]["bg"] == [1, 2]  # ... leaves the memo intact
    other = [memo.memo_read(lambda im: "other", im) for im in people[:2]]  # another reader: its own entries
    assert other == ["other", "other"]


def test_memo_embed_is_batch_exact_and_embeds_once(people):
    ext = BatchExtractor(batch_size=4)
    plain = BatchExtractor(batch_size=4).embed_images(people).numpy()
    got = memo.memo_embed_images(ext, people)
    assert np.array_equal(got, plain) and got.dtype == np.float32
    assert ext.calls == [4, 4, 4]  # one forward batch each, in the extractor's own chunks
    again = memo.memo_embed_images(ext, _copies(people))
    assert np.array_equal(again, plain) and ext.calls == [4, 4, 4]
    again[:] = -1  # a caller writing into its result does not reach the memo
    assert np.array_equal(memo.memo_embed_images(ext, people), plain)
    assert all(not v.flags.writeable for v in memo.EMBEDDINGS._data.values())
    shifted = memo.memo_embed_images(ext, people[1:9])  # other batches: embedded, not reused
    assert np.array_equal(shifted, BatchExtractor(batch_size=4).embed_images(people[1:9]).numpy())


def test_memo_embed_keys_on_the_extractor_object(people):
    a, b = BatchExtractor(), BatchExtractor()  # same id string, separate objects: nothing shared
    memo.memo_embed_images(a, people[:4])
    memo.memo_embed_images(b, people[:4])
    assert a.calls == [4] and b.calls == [4]

    class Unhashable(BatchExtractor):
        __hash__ = None

    u = Unhashable()
    for _ in range(2):  # not memoised, still correct
        assert np.array_equal(memo.memo_embed_images(u, people[:4]), a.embed_images(people[:4]).numpy())
    assert u.calls == [4, 4]


def test_zero_shot_probes_sharing_a_clip_embed_each_batch_once(people):
    ext = BatchExtractor(batch_size=4)
    spec = ProbeSpec(name="p", attribute="presentation", prompts={"man": ["a"], "woman": ["b"]})
    p1, p2 = ZeroShotProbe(spec, ext, batch_size=8), ZeroShotProbe(ProbeSpec(**{**spec.to_dict(), "name": "q"}),
                                                                 ext, batch_size=8)
    e1, e2 = p1.embed(people), p2.embed(people)
    assert np.array_equal(e1, e2) and ext.calls == [4, 4, 4]
    plain = BatchExtractor(batch_size=4)  # the uncached path: the probe's chunks straight to the extractor
    uncached = np.concatenate([_normalise(plain.embed_images(people[i:i + 8])) for i in range(0, 12, 8)])
    assert np.array_equal(e1, uncached)
    assert np.array_equal(p1.predict(people).labels, p1.classify_embeddings(uncached).labels)
    assert ext.calls == [4, 4, 4]


def test_oracle_probes_read_each_image_once(people, monkeypatch):
    from t2i_audit.world import oracle

    calls, original = [], oracle.read_image

    def counting(im):
        calls.append(1)
        return original(im)

    monkeypatch.setattr(oracle, "read_image", counting)
    attrs = ("presentation", "skin", "clothing", "background")
    outs = [OracleProbe(a).predict(people + _copies(people)).names() for a in attrs]
    assert len(calls) == len(people)  # 4 probes x 24 images: each distinct image read once
    assert outs == [OracleProbe(a, reader=original).predict(people + people).names() for a in attrs]
