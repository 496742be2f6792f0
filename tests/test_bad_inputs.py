"""A catalogue of malformed inputs, each through the CLI: exit code 2, exactly one non-empty line on
stderr naming the input and the fix, no traceback, and nothing half-written (the output directory is
absent, or byte-for-byte unchanged)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from t2i_audit.cli import main

GEN_SOURCE = '''
import zlib
from t2i_audit.world.bias import BiasSpec
from t2i_audit.world.render import render
from t2i_audit.world.scene import sample_scene, scene_rng

_SPEC = BiasSpec.load()

def draw(prompts, seeds, params):
    return [render(sample_scene(scene_rng(s, zlib.crc32(p.encode())), _SPEC), 32) for p, s in zip(prompts, seeds)]
'''

SUITE = """\
name: tiny
version: "1"
images_per_prompt: 2
seeds: {kind: range, start: 0}
slots:
  color: [red, blue]
  shape: [circle, square]
templates:
  - template: "a drawing of a {color} {shape}"
    category: colour
    expect: {objects: [{shape: "{shape}", color: "{color}"}], count: 1}
"""


def write_generator(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "gen_world.py").write_text(GEN_SOURCE)
    return f"python:{directory / 'gen_world.py'}:draw"


def make_run(out: Path, suite_text: str = SUITE, **kw) -> Path:
    """A small complete run (8 PictoWorld renders with expectations) made in-process."""
    from t2i_audit.evals.runs.sampling import SampleConfig, sample

    out = Path(out)
    suite = out.parent / f"{out.name}-suite.yaml"
    suite.write_text(suite_text)
    sample(SampleConfig(suite=str(suite), out=str(out), generator=write_generator(out.parent / f"{out.name}-gen"),
                        progress=False, **kw))
    return out


def snapshot(path: Path):
    """Every file under ``path`` with its sha256 (None if ``path`` is absent)."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


@dataclass
class Case:
    args: list[str]
    watch: Path  # must be absent or unchanged afterwards
    names: tuple[str, ...]  # substrings the error line must contain (the input, the fix)


def _suite(tmp: Path, text: str, name: str = "s.yaml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def _random_clip(directory: Path, nan: bool = False, wrong_shape: bool = False) -> Path:
    """A PictoWorld CLIP directory with random (untrained) weights, in the real on-disk format."""
    import torch
    from safetensors.torch import save_file

    from t2i_audit.generator.models.component_configs import ClipConfig
    from t2i_audit.generator.models.pictoworld_clip import build_open_clip, save_clip
    from t2i_audit.generator.models.tokenizer import CompactTokenizer, world_vocabulary_texts
    from t2i_audit.generator.training.presets import get_preset

    cfg = ClipConfig.from_dict(get_preset("tiny").clip)
    torch.manual_seed(0)
    tok = CompactTokenizer.build(world_vocabulary_texts(), context_length=cfg.context_length)
    cfg.vocab_size = tok.vocab_size
    model = build_open_clip(cfg)
    save_clip(model, cfg, tok, directory)
    if nan or wrong_shape:
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        if nan:
            sd = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in sd.items()}
        if wrong_shape:
            k = next(k for k, v in sd.items() if v.ndim == 2)
            sd[k] = torch.zeros(sd[k].shape[0] + 1, sd[k].shape[1])
        save_file(sd, str(directory / "model.safetensors"))
    return directory


def _folder(tmp: Path, images: dict[str, Image.Image | bytes | None], prompts=None) -> Path:
    """An image folder with manifest.csv serving the tiny suite's 8 (prompt, seed) pairs."""
    d = tmp / "imgs"
    d.mkdir()
    prompts = prompts or [f"a drawing of a {c} {s}" for c in ("red", "blue") for s in ("circle", "square")]
    rows = ["prompt,seed,path"]
    k = 0
    for p in prompts:
        for seed in (0, 1):
            name = f"img{k}.png"
            img = images.get(name, Image.fromarray(np.full((32, 32, 3), 100 + k, np.uint8)))
            if isinstance(img, bytes):
                (d / name).write_bytes(img)
            elif img is not None:
                img.save(d / name)
            rows.append(f"{p},{seed},{name}")
            k += 1
    (d / "manifest.csv").write_text("\n".join(rows) + "\n")
    return d


def _sample(tmp: Path, suite: Path, generator: str, *extra: str) -> list[str]:
    return ["sample", "--suite", str(suite), "--out", str(tmp / "out"), "--generator", generator, "--no-progress",
            *extra]


# Each builder gets (tmp_path, run) where ``run`` builds a shared complete run on demand.
def build_cases():
    c = {}

    def suite_case(text, *names):
        def f(tmp, run):
            p = _suite(tmp, text)
            return Case(_sample(tmp, p, write_generator(tmp / "g")), tmp / "out", (p.name, *names))
        return f

    c["bad-yaml"] = suite_case("name: x\ntemplates: [\n  - {template: 'a'", "YAML")
    c["unknown-slot"] = suite_case(SUITE.replace("{color} {shape}", "{colour} {shape}"),
                                   "unknown slot {colour}", "did you mean 'color'")
    c["empty-suite"] = suite_case("name: empty\ntemplates: []\n", "templates")
    c["duplicate-prompts"] = suite_case(
        SUITE + '  - template: "a drawing of a {color} {shape}"\n    category: again\n', "duplicate")
    c["bad-seed-policy"] = suite_case(SUITE.replace("kind: range", "kind: rnage"),
                                      "seeds.kind", "did you mean 'range'")
    c["suite-unknown-key"] = suite_case(SUITE.replace("category: colour", "categroy: colour"),
                                        "categroy", "did you mean 'category'")
    c["duplicate-yaml-key"] = suite_case(SUITE.replace('version: "1"', 'version: "1"\nversion: "2"'), "version")
    c["control-characters-in-prompt"] = suite_case(SUITE.replace("a drawing of", "a \x07drawing\x1b[31m of"), "s.yaml")
    c["sample-larger-than-combinations"] = suite_case(SUITE.replace("category: colour", "category: colour\n    sample: 99"),
                                                      "sample")
    c["expectation-typo"] = suite_case(SUITE.replace('color: "{color}"}]', 'color: "{color}", position: center}]'),
                                       "'center'", "did you mean 'centre'")

    def corrupt_png(tmp, run):
        d = _folder(tmp, {"img3.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 10})
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("img3.png", "does not decode"))
    c["corrupt-png-in-folder"] = corrupt_png

    def wrong_size(tmp, run):
        d = _folder(tmp, {"img5.png": Image.new("RGB", (48, 48))})
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("differ in size", "48x48"))
    c["wrong-image-size-in-folder"] = wrong_size

    def wrong_mode(tmp, run):
        d = _folder(tmp, {"img2.png": Image.new("I;16", (32, 32))})
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("img2.png", "mode I;16", "RGB"))
    c["wrong-image-mode-in-folder"] = wrong_mode

    def missing_files(tmp, run):
        d = _folder(tmp, {"img1.png": None, "img6.png": None})
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("does not exist",))
    c["image-folder-missing-files"] = missing_files

    def folder_bad_seed(tmp, run):
        d = _folder(tmp, {})
        (d / "manifest.csv").write_text((d / "manifest.csv").read_text().replace(",1,img1", ",one,img1"))
        return Case(_sample(tmp, _suite(tmp, SUITE), f"folder:{d}"), tmp / "out", ("manifest.csv", "'one'"))
    c["folder-csv-non-integer-seed"] = folder_bad_seed

    def missing_ckpt(tmp, run):
        return Case(_sample(tmp, _suite(tmp, SUITE), f"checkpoint:{tmp / 'nope'}"), tmp / "out", ("nope",))
    c["missing-checkpoint-dir"] = missing_ckpt

    def missing_weights(tmp, run):
        ck = tmp / "ck"
        _random_clip(ck / "clip")
        (ck / "index.json").write_text('{"format": "t2i-audit-checkpoint/1"}')
        (ck / "clip" / "model.safetensors").unlink()
        return Case(["generate", "a chef", "--checkpoint", str(ck), "--out", str(tmp / "o" / "g.png")], tmp / "o",
                    ("model.safetensors", "missing"))
    c["missing-checkpoint-weights-file"] = missing_weights

    def wrong_shapes(tmp, run):
        d = _random_clip(tmp / "clip", wrong_shape=True)
        r = run()
        return Case(["score", str(r), "--metrics", "clip_score", "--clip", f"bundled-clip:{d}", "--no-cache",
                     "--no-progress"], r, ("model.safetensors", "shape"))
    c["wrong-tensor-shapes-in-weights"] = wrong_shapes

    def nan_features(tmp, run):
        d = _random_clip(tmp / "clip", nan=True)
        r = run()
        return Case(["score", str(r), "--metrics", "clip_score", "--clip", f"bundled-clip:{d}", "--no-cache",
                     "--no-progress"], r, ("NaN/Inf", "weights"))
    c["nan-inf-features"] = nan_features

    def fd_one_image(tmp, run):
        d = _random_clip(tmp / "clip")
        one = make_run(tmp / "one", SUITE.replace("images_per_prompt: 2", "images_per_prompt: 1")
                       .replace("[red, blue]", "[red]").replace("[circle, square]", "[circle]"))
        return Case(["score", str(one), "--metrics", "fd", "--reference", "world", "--reference-n", "20",
                     "--features", f"bundled-clip:{d}", "--no-cache", "--no-progress", "--dist-reps", "0"],
                    one, ("2",))
    c["fewer-than-2-images-for-fd"] = fd_one_image

    def preset_unknown_key(tmp, run):
        p = tmp / "preset.json"
        from t2i_audit.generator.training.presets import get_preset

        d = json.loads(get_preset("tiny").to_json())
        d["lerning_rate"] = 1
        p.write_text(json.dumps(d))
        return Case(["train", "--preset", str(p), "--out", str(tmp / "ck"), "--no-progress"], tmp / "ck",
                    ("lerning_rate",))
    c["config-with-unknown-keys"] = preset_unknown_key

    def bias_spec(tmp, run):
        from t2i_audit.world.bias import BiasSpec

        spec = BiasSpec.load().to_dict()
        prof = next(iter(spec["professions"]))
        spec["professions"][prof]["joint"]["man"]["light"] = 0.9
        p = tmp / "spec.yaml"
        p.write_text(json.dumps(spec))
        return Case(["world", "render", "--n", "2", "--out", str(tmp / "w"), "--bias-spec", str(p)], tmp / "w",
                    ("spec.yaml", "sum"))
    c["bias-spec-not-summing-to-1"] = bias_spec

    def gate_unknown_metric(tmp, run):
        from t2i_audit.evals.scoring.score import ScoreConfig, score_run

        r = run()
        score_run(r, ScoreConfig(metrics=("skills",), reps=50, progress=False, cache=False))
        rules = tmp / "rules.yaml"
        rules.write_text("rules:\n  - clip_scroe >= 1\n")
        return Case(["gate", str(r), "--rules", str(rules)], r, ("clip_scroe",))
    c["gate-rule-unknown-metric"] = gate_unknown_metric

    def gate_bad_yaml(tmp, run):
        r = run()
        rules = tmp / "rules.yaml"
        rules.write_text("rules: [\n")
        return Case(["gate", str(r), "--rules", str(rules)], r, ("rules.yaml",))
    c["gate-rules-bad-yaml"] = gate_bad_yaml

    def unknown_metric(tmp, run):
        r = run()
        return Case(["score", str(r), "--metrics", "clip_scor"], r, ("clip_scor", "did you mean 'clip_score'"))
    c["unknown-metric"] = unknown_metric

    def unknown_extractor(tmp, run):
        r = run()
        return Case(["score", str(r), "--metrics", "clip_score", "--clip", "openclip:RN50:x"], r,
                    ("openclip", "did you mean 'open_clip'"))
    c["unknown-feature-extractor"] = unknown_extractor

    def unknown_sampler(tmp, run):
        return Case(["generate", "a chef", "--sampler", "ddin", "--out", str(tmp / "o" / "g.png")], tmp / "o",
                    ("--sampler", "ddin"))
    c["unknown-sampler"] = unknown_sampler

    def negative_n(tmp, run):
        return Case(["world", "render", "--n", "-3", "--out", str(tmp / "w")], tmp / "w", ("--n", "-3"))
    c["negative-n"] = negative_n

    def zero_batch(tmp, run):
        return Case(_sample(tmp, _suite(tmp, SUITE), write_generator(tmp / "g"), "--batch-size", "0"), tmp / "out",
                    ("--batch-size",))
    c["zero-batch-size"] = zero_batch

    def bad_param(tmp, run):
        return Case(_sample(tmp, _suite(tmp, SUITE), write_generator(tmp / "g"), "--param", "steps"), tmp / "out",
                    ("--param", "key=value"))
    c["malformed-param"] = bad_param

    def unknown_generator_kind(tmp, run):
        return Case(_sample(tmp, _suite(tmp, SUITE), "diffuser:/x"), tmp / "out", ("diffuser", "did you mean"))
    c["unknown-generator-kind"] = unknown_generator_kind

    def missing_manifest(tmp, run):
        r = run()
        (r / "manifest.parquet").unlink()
        return Case(["score", str(r), "--metrics", "skills", "--no-progress"], r, ("manifest.parquet",))
    c["missing-manifest"] = missing_manifest

    def corrupt_manifest(tmp, run):
        r = run()
        (r / "manifest.parquet").write_bytes(b"PAR1 not really")
        return Case(["score", str(r), "--metrics", "skills", "--no-progress"], r, ("manifest.parquet",))
    c["corrupt-manifest-parquet"] = corrupt_manifest

    def unknown_schema(tmp, run):
        r = run()
        meta = json.loads((r / "run.json").read_text())
        (r / "run.json").write_text(json.dumps({**meta, "schema": "t2i-audit/run/99"}))
        return Case(["score", str(r), "--metrics", "skills", "--no-progress"], r, ("run.json", "t2i-audit/run/99"))
    c["run-json-unknown-schema"] = unknown_schema

    def run_json_garbage(tmp, run):
        r = run()
        (r / "run.json").write_text("{half")
        return Case(["audit", "bias", str(r), "--probe", "oracle-presentation", "--no-progress"], r,
                    ("run.json", "not valid JSON"))
    c["run-json-not-json"] = run_json_garbage

    def tampered_image(tmp, run):
        r = run()
        img = sorted((r / "images").iterdir())[0]
        Image.new("RGB", (32, 32), "white").save(img)
        return Case(["score", str(r), "--metrics", "skills", "--no-progress"], r, ("sha256", "re-run"))
    c["image-changed-after-sampling"] = tampered_image

    def not_a_run(tmp, run):
        (tmp / "empty").mkdir()
        return Case(["score", str(tmp / "empty"), "--metrics", "skills"], tmp / "empty", ("run.json",))
    c["score-a-directory-that-is-not-a-run"] = not_a_run

    def out_not_empty(tmp, run):
        (tmp / "out").mkdir()
        (tmp / "out" / "notes.txt").write_text("mine")
        return Case(_sample(tmp, _suite(tmp, SUITE), write_generator(tmp / "g")), tmp / "out",
                    ("not empty", "notes.txt"))
    c["sample-into-a-foreign-directory"] = out_not_empty

    def other_identity(tmp, run):
        r = run()
        return Case(["sample", "--suite", str(r.parent / f"{r.name}-suite.yaml"), "--out", str(r), "--generator",
                     write_generator(tmp / "other"), "--no-progress"], r, ("different run", "new --out"))
    c["resume-with-another-generator"] = other_identity

    def read_only_out(tmp, run):
        ro = tmp / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        if os.access(ro, os.W_OK):  # root ignores modes: make it immutable instead, or skip
            if subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode != 0:
                pytest.skip("cannot make a read-only directory here (root without chattr)")
        return Case(_sample(tmp, _suite(tmp, SUITE), write_generator(tmp / "g"), "--out", str(ro / "run")), ro,
                    (str(ro),))
    c["read-only-output-directory"] = read_only_out

    def reference_corrupt(tmp, run):
        r = run()
        ref = tmp / "ref"
        ref.mkdir()
        for i in range(3):
            Image.new("RGB", (32, 32), (i * 50, 0, 0)).save(ref / f"{i}.png")
        (ref / "3.png").write_bytes(b"not a png")
        d = _random_clip(tmp / "clip")
        return Case(["score", str(r), "--metrics", "fd", "--reference", str(ref), "--features", f"bundled-clip:{d}",
                     "--no-cache", "--no-progress"], r, ("3.png",))
    c["corrupt-image-in-reference-folder"] = reference_corrupt

    return c


CASES = build_cases()


@pytest.fixture()
def run_factory(tmp_path):
    made = {}

    def run():
        if "run" not in made:
            made["run"] = make_run(tmp_path / "run")
        return made["run"]
    return run


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(name, tmp_path, run_factory):
    case = CASES[name](tmp_path, run_factory)
    before = snapshot(case.watch)
    try:
        r = CliRunner().invoke(main, case.args)
    finally:
        subprocess.run(["chattr", "-i", str(tmp_path / "ro")], capture_output=True) if (tmp_path / "ro").exists() \
            else None
    assert "Traceback" not in r.output, r.output
    assert r.exit_code == 2, (r.exit_code, r.output, repr(r.exception))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("error: ")
    for s in case.names:
        assert s in line, (s, line)
    assert snapshot(case.watch) == before, "the command left files behind"
    assert len(CASES) >= 25


def test_prompt_text_never_reaches_a_file_name(tmp_path):
    """Path separators, '..', HTML and quotes in prompt text are accepted as text; files are named by
    content-derived ids only, inside the run directory."""
    nasty = SUITE.replace('template: "a drawing of a {color} {shape}"',
                          'template: "../../x/<script>alert(1)</script> a {color} {shape} \\\\ C:\\\\evil \\"q\\""')
    nasty = nasty.replace("    expect: {objects: [{shape: \"{shape}\", color: \"{color}\"}], count: 1}\n", "")
    r = make_run(tmp_path / "run", nasty)
    from t2i_audit.evals.runs.sampling import load_run

    meta, df = load_run(r)
    assert all("<script>" in t and "../" in t for t in df.text)
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert all(f.startswith(("run/", "run-gen/", "run-suite")) for f in files), files
    for p in (r / "images").iterdir():
        assert p.name.startswith("tiny-") and p.suffix == ".png" and "<" not in p.name and "\\" not in p.name


# ------------------------------------------------------------------ fuzzing beyond the suite and rule parsers
# (tests/test_suites_fuzz.py fuzzes the suite parser, tests/test_gate_rules.py single gate rules.)
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_subnormal=False),
                     st.text(alphabet="abmnw .-_:[]*<>=", max_size=10))
_keys = st.sampled_from(["name", "version", "professions", "joint", "presentation", "skin", "man", "woman",
                         "light", "medium", "dark", "chef", "firefighter", "rules", "alpha", "x"])
_trees = st.recursive(_scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(_keys, c, max_size=4)),
                      max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_trees, st.text(max_size=120), st.binary(max_size=120)))
def test_fuzz_bias_spec_and_gate_documents_never_crash(tmp_path_factory, doc):
    """Random YAML documents (or raw text, or raw bytes) as a bias spec file and as a gate rules file:
    either they load, or they raise InputError with a message naming the file (tests/test_bad_bytes.py
    covers every other file input)."""
    import yaml

    from t2i_audit.errors import InputError
    from t2i_audit.reports.gate.rules import load_rules
    from t2i_audit.world.bias import BiasSpec

    d = tmp_path_factory.mktemp("fz")
    data = doc if isinstance(doc, bytes) else (doc if isinstance(doc, str) else yaml.safe_dump(doc)).encode()
    for name, load in (("spec.yaml", BiasSpec.load), ("rules.yaml", load_rules)):
        p = d / name
        p.write_bytes(data)
        try:
            load(p)
        except InputError as e:
            assert name in str(e)
