"""Attribute probes: classifiers that read one attribute (presentation, skin tone, ...) off an image.

A probe names an attribute, its classes and an abstain rule. It returns, for every image, the index
of a class or an abstention code: ``NO_PERSON`` (the image shows no person, e.g. the "no person"
prompts won) or ``UNSURE`` (the evidence is weak: the margin between the two best classes is below
the threshold, or the oracle read ``unknown``). Three kinds ship:

* :class:`ZeroShotProbe` - CLIP zero-shot on any feature extractor (``embed_images``/``embed_texts``):
  several text prompts per class, their normalised embeddings averaged (prompt ensembling, as in
  CLIP's zero-shot classifiers), softmax of ``temperature * cos``.
* :class:`OracleProbe` - the PictoWorld oracle, reading pixels (the ground truth for validation).
* :class:`CallableProbe` - any function ``images -> list[str | None]``.

Probe definitions are data (:class:`ProbeSpec`, YAML under ``audits/probes/``); see docs/audits.md.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from t2i_audit.audits.engine.reading_memo import memo_embed_images, memo_read
from t2i_audit.core.io import read_user_text
from t2i_audit.core.safe_yaml import check_yaml_file
from t2i_audit.core.safe_yaml import safe_load as bounded_yaml
from t2i_audit.errors import InputError, did_you_mean

JOINT_SEP = "×"  # joins the attributes of a joint probe: presentation×skin
UNSURE = -1
NO_PERSON = -2
ABSTAIN_NAMES = {UNSURE: "unsure", NO_PERSON: "no person"}


class ProbeError(InputError):
    """A probe definition is malformed or unknown."""


@dataclass
class ProbeOutput:
    """Per-image predictions of one probe: class index, or UNSURE / NO_PERSON."""

    classes: tuple[str, ...]
    labels: np.ndarray  # int64 (N,)
    margins: np.ndarray | None = None  # top-1 minus top-2 probability among the classes

    def names(self) -> list[str]:
        return [self.classes[i] if i >= 0 else ABSTAIN_NAMES[int(i)] for i in self.labels]

    @property
    def abstain_rate(self) -> float:
        return float(np.mean(self.labels < 0)) if len(self.labels) else float("nan")


@dataclass
class ProbeSpec:
    """A zero-shot probe as data. ``prompts`` maps class -> prompt templates; ``{slot}`` placeholders
    are expanded over ``slots`` (e.g. every profession) and all expansions of a class are averaged."""

    name: str
    attribute: str
    prompts: dict[str, list[str]]
    none_prompts: list[str] = field(default_factory=list)
    margin: float = 0.0
    temperature: float = 100.0
    slots: dict[str, list[str]] = field(default_factory=dict)
    domain: str = "pictoworld"
    limits: str = ""

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.prompts)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d, source: str = "<memory>") -> ProbeSpec:
        if not isinstance(d, dict):
            raise ProbeError(f"{source}: a probe is a mapping with name, attribute, prompts")
        names = [f.name for f in dataclasses.fields(ProbeSpec)]
        for k in d:
            if k not in names:
                raise ProbeError(f"{source}: unknown key {k!r}{did_you_mean(k, names)}; valid: {', '.join(names)}")
        for k in ("name", "attribute", "prompts"):
            if k not in d:
                raise ProbeError(f"{source}: missing {k!r}")
        prompts = d["prompts"]
        if not isinstance(prompts, dict) or len(prompts) < 2:
            raise ProbeError(f"{source}: 'prompts' must map at least two classes to lists of prompts")
        clean = {}
        for c, ps in prompts.items():
            if isinstance(ps, str):
                ps = [ps]
            if not isinstance(ps, list) or not ps or not all(isinstance(p, str) and p for p in ps):
                raise ProbeError(f"{source}: prompts.{c} must be a non-empty list of strings")
            clean[str(c)] = list(ps)
        margin = d.get("margin", 0.0)
        if not isinstance(margin, (int, float)) or not 0 <= margin < 1:
            raise ProbeError(f"{source}: margin must be a number in [0, 1), got {margin!r}")
        temp = d.get("temperature", 100.0)
        if not isinstance(temp, (int, float)) or temp <= 0:
            raise ProbeError(f"{source}: temperature must be a positive number, got {temp!r}")
        slots = d.get("slots") or {}
        if not isinstance(slots, dict) or not all(isinstance(v, list) and v for v in slots.values()):
            raise ProbeError(f"{source}: slots must map a placeholder name to a non-empty list")
        out = ProbeSpec(name=str(d["name"]), attribute=str(d["attribute"]), prompts=clean,
                        none_prompts=list(d.get("none_prompts") or []), margin=float(margin),
                        temperature=float(temp), slots={k: [str(x) for x in v] for k, v in slots.items()},
                        domain=str(d.get("domain", "pictoworld")), limits=str(d.get("limits", "")).strip())
        try:
            out.expanded()
        except KeyError as e:
            raise ProbeError(f"{source}: prompt placeholder {e} has no entry under 'slots'") from None
        return out

    @staticmethod
    def load(path: str | Path) -> ProbeSpec:
        p = Path(path)
        if not p.is_file():
            raise ProbeError(f"{p}: probe file not found; give a YAML file or one of "
                             f"{', '.join(builtin_probe_names())}")
        try:
            check_yaml_file(p)
            data = bounded_yaml(read_user_text(p, "probe file", "save the probe spec as UTF-8 YAML"), str(p))
        except yaml.YAMLError as e:
            raise ProbeError(f"{p}: not valid YAML: {getattr(e, 'problem', e)}") from None
        return ProbeSpec.from_dict(data, str(p))

    def _expand(self, template: str) -> list[str]:
        names = [k for k in self.slots if "{" + k + "}" in template]
        out = [template]
        for k in names:
            out = [t.replace("{" + k + "}", v) for t in out for v in self.slots[k]]
        if "{" in "".join(out):
            missing = out[0][out[0].index("{") + 1:out[0].index("}")]
            raise KeyError(missing)
        return out

    def expanded(self) -> dict[str, list[str]]:
        """Class -> every prompt text after slot expansion (the ``none`` key for no-person prompts)."""
        out = {c: [t for p in ps for t in self._expand(p)] for c, ps in self.prompts.items()}
        if self.none_prompts:
            out["__none__"] = [t for p in self.none_prompts for t in self._expand(p)]
        return out


def builtin_probe_names() -> list[str]:
    d = resources.files("t2i_audit.audits.probes")
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml"))


def load_probe_spec(name_or_path: str | Path) -> ProbeSpec:
    """A built-in probe by name (``pictoworld-presentation``, ...) or a YAML file."""
    name = str(name_or_path)
    if name in builtin_probe_names():
        text = resources.files("t2i_audit.audits.probes").joinpath(f"{name}.yaml").read_text()
        return ProbeSpec.from_dict(yaml.safe_load(text), f"{name}.yaml")
    if Path(name).suffix in (".yaml", ".yml") or Path(name).exists():
        return ProbeSpec.load(name)
    hint = did_you_mean(name, builtin_probe_names() + ["oracle"])
    raise ProbeError(f"unknown probe {name!r}{hint}; give a YAML file, 'oracle', or one of "
                     f"{', '.join(builtin_probe_names())}")


class Probe:
    """Base class. Subclasses set ``name``, ``attribute``, ``classes`` and implement ``predict``."""

    name: str
    attribute: str
    classes: tuple[str, ...]
    limits: str = ""

    def predict(self, images: Sequence) -> ProbeOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "attribute": self.attribute, "classes": list(self.classes),
                "kind": type(self).__name__, "limits": self.limits}


def _normalise(x) -> np.ndarray:
    x = np.asarray(x.detach().cpu().double() if hasattr(x, "detach") else x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ZeroShotProbe(Probe):
    """CLIP zero-shot probe on any feature extractor with ``embed_images`` and ``embed_texts``."""

    def __init__(self, spec: ProbeSpec, extractor, batch_size: int = 64, progress: bool = False):
        self.spec = spec
        self.extractor = extractor
        self.name, self.attribute, self.classes = spec.name, spec.attribute, spec.classes
        self.limits = spec.limits
        self.batch_size = batch_size
        self.progress = progress
        self._text = None

    def text_matrix(self) -> np.ndarray:
        """(K [+1], D): the averaged, re-normalised prompt embedding of each class (+ no-person)."""
        if self._text is None:
            rows = []
            for texts in self.spec.expanded().values():
                e = _normalise(self.extractor.embed_texts(list(texts)))
                rows.append(e.mean(0))
            self._text = _normalise(np.stack(rows))
        return self._text

    def embed(self, images: Sequence) -> np.ndarray:
        from tqdm import tqdm

        out = []
        steps = range(0, len(images), self.batch_size)
        for i in tqdm(steps, desc=f"probe {self.name}", unit="batch", disable=not self.progress):
            out.append(_normalise(memo_embed_images(self.extractor, images[i:i + self.batch_size])))
        return np.concatenate(out) if out else np.zeros((0, self.text_matrix().shape[1]))

    def classify_embeddings(self, image_emb) -> ProbeOutput:
        """Classify precomputed image embeddings (lets a benchmark embed once and resample)."""
        img = _normalise(image_emb)
        logits = self.spec.temperature * img @ self.text_matrix().T
        logits -= logits.max(1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(1, keepdims=True)
        k = len(self.classes)
        labels = prob[:, :k].argmax(1).astype(np.int64)
        cls = prob[:, :k] / prob[:, :k].sum(1, keepdims=True)
        top2 = np.sort(cls, axis=1)[:, -2:]
        margins = top2[:, 1] - top2[:, 0]
        labels[margins < self.spec.margin] = UNSURE
        if self.spec.none_prompts:
            labels[prob.argmax(1) == k] = NO_PERSON
        return ProbeOutput(self.classes, labels, margins)

    def predict(self, images: Sequence) -> ProbeOutput:
        return self.classify_embeddings(self.embed(images))

    def describe(self) -> dict:
        d = super().describe()
        d.update(extractor=getattr(self.extractor, "id", type(self.extractor).__name__),
                 spec=self.spec.to_dict(),
                 rule=(f"softmax({self.spec.temperature:g} * cos) over class-averaged prompt embeddings; "
                       f"'no person' if the no-person prompts win ({len(self.spec.none_prompts)} given); "
                       f"'unsure' if top-1 minus top-2 class probability < {self.spec.margin:g}"))
        return d


class CallableProbe(Probe):
    """Wrap any classifier ``fn(images) -> list[str | None]``: a class name, or None / 'unsure' /
    'no person' to abstain."""

    def __init__(self, name: str, attribute: str, classes: Sequence[str], fn: Callable,
                 limits: str = ""):
        self.name, self.attribute, self.classes = name, attribute, tuple(classes)
        self.fn, self.limits = fn, limits

    def predict(self, images: Sequence) -> ProbeOutput:
        names = list(self.fn(list(images)))
        if len(names) != len(images):
            raise ProbeError(f"probe {self.name}: returned {len(names)} labels for {len(images)} images")
        idx = {c: i for i, c in enumerate(self.classes)}
        labels = np.empty(len(names), dtype=np.int64)
        for j, n in enumerate(names):
            if n is None or n == "unsure" or n == "unknown":
                labels[j] = UNSURE
            elif n == "no person":
                labels[j] = NO_PERSON
            elif n in idx:
                labels[j] = idx[n]
            else:
                raise ProbeError(f"probe {self.name}: label {n!r} is not one of {', '.join(self.classes)}")
        return ProbeOutput(self.classes, labels)


ORACLE_LIMITS = ("PictoWorld oracle: reads palette colours and silhouettes; exact on clean renders, "
                 "abstains ('unknown') on unclear pixels. Valid only for PictoWorld images.")


# The demographic probes a bias audit (and `t2i-audit label`) uses by domain, per attribute.
DEFAULT_PROBES = {"pictoworld": {"presentation": "pictoworld-presentation", "skin": "pictoworld-skin"},
                  "real": {"presentation": "real-gender-presentation", "skin": "real-skin-tone"}}
BACKGROUND_BINS = ("dark", "mid", "light")  # thirds of PictoWorld's background grey range


def background_bin(rgb) -> str:
    """The third of ``vocab.BACKGROUND_RANGE`` (grey levels, drawn uniformly in training) that the
    oracle's background estimate falls in; 'unsure' outside the range by more than 8 levels."""
    from t2i_audit.world.vocab import BACKGROUND_RANGE

    if rgb is None:
        return "unsure"
    lo, hi = BACKGROUND_RANGE
    v = float(np.mean(rgb))
    if not lo - 8 <= v <= hi + 8:
        return "unsure"
    return BACKGROUND_BINS[min(2, max(0, int((v - lo) * 3 // (hi - lo + 1))))]


class OracleProbe(CallableProbe):
    """The PictoWorld oracle as a probe of one attribute (presentation, skin, profession, clothing
    colour, or background lightness in thirds of the training range).

    ``reader`` defaults to ``t2i_audit.world.oracle.read_image``; a scene that is not a person gives
    'no person', an attribute read as 'unknown' gives 'unsure'."""

    def __init__(self, attribute: str, reader: Callable | None = None):
        from t2i_audit.world import vocab

        classes = {"presentation": vocab.PRESENTATIONS, "skin": vocab.SKINS, "profession": vocab.PROFESSIONS,
                   "clothing": vocab.CLOTHING, "background": BACKGROUND_BINS}.get(attribute)
        if classes is None:
            raise ProbeError(f"oracle probe: unknown attribute {attribute!r}; "
                             "use presentation, skin, profession, clothing or background")
        if reader is None:  # the default oracle reads each image content once per process (engine.memo)
            from t2i_audit.world.oracle import read_image

            reader = functools.partial(memo_read, read_image)
        self._reader = reader

        def read(images):
            out = []
            for im in images:
                r = self._reader(im)
                if attribute == "background":
                    out.append(background_bin(r.details.get("background")))
                elif getattr(r, "kind", "person") != "person":
                    out.append("no person")
                else:
                    v = getattr(r, attribute)
                    out.append(v if v in classes else "unsure")
            return out

        super().__init__(f"oracle-{attribute}", attribute, classes, read, ORACLE_LIMITS)


class JointProbe(Probe):
    """Two probes read together: classes ``a|b`` (e.g. ``woman|dark``) for intersectional tables.
    Abstains when either abstains (``no person`` wins over ``unsure``)."""

    def __init__(self, a: Probe, b: Probe):
        self.a, self.b = a, b
        self.name = f"{a.name}{JOINT_SEP}{b.name}"
        self.attribute = f"{a.attribute}{JOINT_SEP}{b.attribute}"
        self.classes = tuple(f"{x}|{y}" for x in a.classes for y in b.classes)
        self.limits = " ".join(dict.fromkeys(x for x in (a.limits, b.limits) if x))

    @staticmethod
    def combine(oa: ProbeOutput, ob: ProbeOutput) -> ProbeOutput:
        kb = len(ob.classes)
        lab = oa.labels * kb + ob.labels
        lab = np.where((oa.labels < 0) | (ob.labels < 0), UNSURE, lab)
        lab = np.where((oa.labels == NO_PERSON) | (ob.labels == NO_PERSON), NO_PERSON, lab)
        classes = tuple(f"{x}|{y}" for x in oa.classes for y in ob.classes)
        return ProbeOutput(classes, lab.astype(np.int64))

    def predict(self, images: Sequence) -> ProbeOutput:
        return self.combine(self.a.predict(images), self.b.predict(images))

    def describe(self) -> dict:
        d = super().describe()
        d["parts"] = [self.a.describe(), self.b.describe()]
        return d


def make_probe(name_or_path: str, extractor=None, oracle_reader: Callable | None = None,
               **kwargs) -> Probe:
    """Build a probe from a name: ``oracle-<attribute>`` / ``oracle:<attribute>``, a built-in
    zero-shot probe name, or a YAML file (zero-shot probes need ``extractor``)."""
    s = str(name_or_path)
    for prefix in ("oracle-", "oracle:"):
        if s.startswith(prefix):
            return OracleProbe(s[len(prefix):], oracle_reader)
    spec = load_probe_spec(s)
    if extractor is None:
        raise ProbeError(f"probe {spec.name} is a zero-shot CLIP probe and needs an evaluator CLIP "
                         "(--clip PATH or 'bundled')")
    return ZeroShotProbe(spec, extractor, **kwargs)
