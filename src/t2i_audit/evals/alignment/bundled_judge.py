"""The ``bundled`` judge: the bundled PictoWorld CLIP answering yes/no zero-shot. Not the oracle; it
errs like a real judge (it never sees the oracle's reading, only CLIP embeddings).

For a question with a PictoWorld spec, the prompt's expectation (``context``) is written as a
caption in the world's grammar ("a red circle left of a blue square"): the *statement*. Its
*contrasts* are the same caption with the questioned field (``focus``) set to every other value
(other colours, shapes, positions, counts 1-4, relations, professions, presentations, skins; for
"Is there a person?" a few shape captions; for a count of several distinct objects, each object
alone). With cosine similarities s_j of the image to each caption,

    P(yes) = exp(s_0 / T) / sum_j exp(s_j / T)          (T = temperature, default 1 / the CLIP's logit scale)

i.e. the statement's probability renormalised over itself and its alternatives ("yes_vs_no"
normalisation: the probability mass is shared between the yes reading and its no readings, never
taken over a vocabulary). The default T is read from the CLIP's own learned logit scale (18.87 for
the bundled one), so another CLIP directory brings its own.
The whole-prompt question takes the minimum of P(yes) over every field of the context (every part
holds). Questions without a spec (benchmark files) are refused: this judge reads PictoWorld only.
"""

from __future__ import annotations

import numpy as np

from t2i_audit.core.images import open_image
from t2i_audit.errors import InputError
from t2i_audit.world.captions import join_list, person_phrase
from t2i_audit.world.vocab import COLORS, NUMBER_WORDS, POSITIONS, PRESENTATIONS, PROFESSIONS, SHAPES, SKINS

RELATIONS = ("left of", "right of", "above", "below")
POSITION_PHRASE = {"left": "on the left", "right": "on the right", "top": "at the top",
                   "bottom": "at the bottom", "centre": "in the centre"}
VOCAB = {"shape": SHAPES, "color": COLORS, "position": POSITIONS, "profession": PROFESSIONS,
         "presentation": PRESENTATIONS, "skin": SKINS}
NOT_PERSON = ("a red circle", "a blue square", "a green triangle", "two yellow circles")


def _article(w: str) -> str:
    return "an" if w[:1] in "aeiou" else "a"


def _obj(o: dict, with_position: bool = True) -> str:
    words = [w for w in (o.get("color"), o.get("shape") or "object") if w]
    text = f"{_article(words[0])} {' '.join(words)}"
    return f"{text} {POSITION_PHRASE[o['position']]}" if with_position and o.get("position") else text


def caption(ctx: dict) -> str:
    """A PictoWorld expectation written in the world's caption grammar."""
    if ctx.get("person") is not None:
        p = ctx["person"]
        return person_phrase(p.get("profession") or "person", p.get("presentation"), p.get("skin"))
    objs = list(ctx.get("objects") or [])
    rel, n = ctx.get("relation"), ctx.get("count")
    if rel and len(objs) >= 2:
        return f"{_obj(objs[int(rel['a'])], False)} {rel['rel']} {_obj(objs[int(rel['b'])], False)}"
    if len(objs) == 1 and n is not None and n != 1:
        o = objs[0]
        noun = " ".join(w for w in (o.get("color"), (o.get("shape") or "object") + "s") if w)
        return f"{NUMBER_WORDS[n - 1] if 1 <= n <= 4 else n} {noun}"
    return join_list([_obj(o) for o in objs]) if objs else "nothing"


def _set(ctx: dict, path: list, value) -> dict:
    out = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in ctx.items()}
    if path[0] == "objects":
        out["objects"] = [dict(o) for o in out["objects"]]
        out["objects"][path[1]][path[2]] = value
    elif path[0] == "person":
        out["person"] = {**out["person"], path[1]: value}
    elif path[0] == "relation":
        out["relation"] = {**out["relation"], "rel": value}
    else:
        out[path[0]] = value
    return out


def contrasts(ctx: dict, focus: list) -> list[str]:
    """Captions of the alternatives to the questioned field (see the module doc)."""
    if focus == ["person"]:
        return list(NOT_PERSON)
    if focus == ["relation"]:
        cur = ctx["relation"]["rel"]
        return [caption(_set(ctx, focus, r)) for r in RELATIONS if r != cur]
    if focus == ["count"]:
        objs = ctx.get("objects") or []
        if len(objs) != 1:  # several distinct objects: each alone
            return [_obj(o) for o in objs] or ["nothing"]
        return [caption({**ctx, "count": k}) for k in range(1, 5) if k != ctx["count"]]
    field = focus[-1]
    cur = ctx["objects"][focus[1]].get(field) if focus[0] == "objects" else ctx["person"].get(field)
    return [caption(_set(ctx, focus, v)) for v in VOCAB[field] if v != cur]


def focuses(ctx: dict) -> list[list]:
    """Every field of a context a whole-prompt question checks."""
    if ctx.get("person") is not None:
        return [["person"]] + [["person", k] for k in ("profession", "presentation", "skin") if ctx["person"].get(k)]
    out = [["objects", i, f] for i, o in enumerate(ctx.get("objects") or []) for f in ("shape", "color", "position")
           if o.get(f)]
    out += [["count"]] if ctx.get("count") is not None else []
    return out + ([["relation"]] if ctx.get("relation") else [])


class BundledJudge:
    normalisation = "yes_vs_no"

    def __init__(self, spec: str, extractor, temperature: float):
        if not temperature > 0:
            raise InputError(f"judge {spec!r}: temperature must be > 0, got {temperature}")
        self.spec, self.ex, self.t = spec, extractor, float(temperature)
        self.revision = f"{extractor.id};T={self.t:.6g}"
        self._text: dict[str, np.ndarray] = {}
        self._img: dict[str, np.ndarray] = {}
        self.cache_dir = None  # the embedding cache's directory (None: default; False: no cache)

    def _texts(self, captions: list[str]) -> np.ndarray:
        new = [c for c in dict.fromkeys(captions) if c not in self._text]
        if new:
            e = self.ex.embed_texts(new).float().numpy()
            for c, v in zip(new, e / np.linalg.norm(e, axis=1, keepdims=True)):
                self._text[c] = v
        return np.stack([self._text[c] for c in captions])

    def _images(self, requests) -> dict[str, np.ndarray]:
        """Unit image embeddings by content hash: from this judge's memo, else the on-disk embedding
        cache (``evals.features.cache``: the score stage's CLIPScore has already embedded a run's images
        with this CLIP, keyed by the same sha256), else embedded in batches of 64 and cached."""
        from t2i_audit.evals.features.cache import EmbeddingCache, embed_cached

        keys = [k for k in dict.fromkeys(r.image_sha256 for r in requests) if k not in self._img]
        if keys:
            path = {r.image_sha256: r.image_path for r in requests}

            def load(i: int):
                with open_image(path[keys[i]]) as im:
                    return im.convert("RGB")

            cache = EmbeddingCache(self.cache_dir, enabled=self.cache_dir is not False)
            try:
                e = embed_cached(cache, self.ex.id, keys, load, self.ex.embed_images, 64)
            finally:
                cache.close()
            for k, v in zip(keys, e / np.linalg.norm(e, axis=1, keepdims=True)):
                self._img[k] = v
        return self._img

    def p_field(self, img: np.ndarray, ctx: dict, focus: list) -> float:
        caps = [caption(ctx)] + contrasts(ctx, focus)
        z = self._texts(caps) @ img / self.t
        z = np.exp(z - z.max())
        return float(z[0] / z.sum())

    def p_yes(self, img: np.ndarray, spec: dict) -> float:
        ctx, focus = spec["context"], spec.get("focus") or []
        if focus:
            return self.p_field(img, ctx, focus)
        return min((self.p_field(img, ctx, f) for f in focuses(ctx)), default=0.5)

    def answer(self, requests):
        from t2i_audit.evals.judges.base import JudgeAnswer

        requests = list(requests)
        for r in requests:
            if not r.spec or "context" not in r.spec:
                raise InputError(f"judge {self.spec!r}: the bundled PictoWorld judge answers questions generated from "
                                 f"a PictoWorld suite only; {r.question!r} has no spec (use an openai:, hf: or "
                                 "python: judge for benchmark files)")
        emb = self._images(requests)
        out = []
        for r in requests:
            p = self.p_yes(emb[r.image_sha256], r.spec)
            out.append(JudgeAnswer(p, "yes" if p >= 0.5 else "no", True))
        return out


def make_bundled_judge(spec: str, options: dict) -> BundledJudge:
    """``bundled`` or ``bundled:CLIP_DIR``; option ``temperature``."""
    from t2i_audit.evals.features.extractors import load_extractor

    _, _, path = spec.partition(":")
    opts = dict(options)
    t = opts.pop("temperature", None)
    if opts:
        raise InputError(f"judge {spec!r}: unknown option(s) {', '.join(sorted(opts))}; the bundled judge takes "
                         "temperature")
    ex = load_extractor(f"bundled-clip:{path}" if path else "bundled-clip")
    if t is None:  # the CLIP's own learned temperature
        t = 1.0 / float(ex.model.logit_scale.detach().exp())
    return BundledJudge(spec, ex, float(t))
