"""Bytes in, one line out: every file a user hands t2i-audit (suite, gate rules, bias spec, probe
spec, bias reference CSV, image-folder CSV, calibration labels, run labels.csv, preset JSON) loads or raises
an InputError naming the file (the CLI prints it as one line); non-UTF-8 or binary content is
named as such. Random bytes (hypothesis) through the loaders, and one non-UTF-8 file through each
CLI option (exit 2)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from t2i_audit.cli import main
from t2i_audit.errors import InputError
from test_bad_inputs import SUITE, make_run, write_generator

_PROBES = [SimpleNamespace(attribute="presentation", classes=("man", "woman"))]


def _loaders():
    from t2i_audit.audits.bias.bias_audit import read_reference
    from t2i_audit.audits.labels.labelling import read_labels
    from t2i_audit.audits.probes.attribute_probes import ProbeSpec
    from t2i_audit.audits.probes.probe_calibration import load_labelled_folder
    from t2i_audit.evals.adapters.folder import FolderAdapter
    from t2i_audit.evals.suites.loader import load_suite
    from t2i_audit.generator.training.presets import get_preset
    from t2i_audit.reports.gate.rules import load_rules
    from t2i_audit.world.bias import BiasSpec

    return {
        "suite.yaml": load_suite,
        "rules.yaml": load_rules,
        "spec.yaml": BiasSpec.load,
        "probe.yaml": ProbeSpec.load,
        "reference.csv": lambda p: read_reference(str(p), _PROBES),
        "manifest.csv": lambda p: FolderAdapter(str(p)),
        "labels.csv": lambda p: load_labelled_folder(p.parent),
        "preset.json": lambda p: get_preset(str(p)),
        "run-labels.csv": lambda p: read_labels(p, classes=["man", "woman"]),
    }


SEEDS = {  # valid-looking starts, so that spliced bytes reach the parsers, not only the decoder
    "suite.yaml": SUITE.encode(),
    "rules.yaml": b"rules:\n  - clip_score >= 1\n",
    "spec.yaml": b"name: x\nprofessions: {}\n",
    "probe.yaml": b"name: p\nattribute: skin\n",
    "reference.csv": b"attribute,group,cls,share\npresentation,*,man,0.5\n",
    "manifest.csv": b"prompt,seed,path\na chef,0,x.png\n",
    "labels.csv": b"file,presentation\nx.png,man\n",
    "preset.json": b'{"name": "x"}',
    "run-labels.csv": b"image_id,attribute,label\np000-s0,presentation,man\n",
}


def _is_text(data: bytes) -> bool:
    try:
        return "\0" not in data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False


_bytes = st.one_of(st.binary(max_size=160), st.tuples(st.integers(0, 40), st.binary(min_size=1, max_size=4)))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SEEDS)), _bytes)
@example("manifest.csv", (32, b"\x01"))  # found by the fuzz: a short CSV row (csv gives None for the path)
def test_random_bytes_in_any_input_file_give_one_line(tmp_path_factory, name, drawn):
    if isinstance(drawn, tuple):  # splice bytes into a valid-looking file
        at, extra = drawn
        seed = SEEDS[name]
        drawn = seed[:at] + extra + seed[at:]
    p = tmp_path_factory.mktemp("fz") / name
    p.write_bytes(drawn)
    try:
        _loaders()[name](p)
    except InputError as e:
        msg = str(e)
        assert name in msg.splitlines()[0], msg  # the CLI folds a parser's context lines into one
        assert _is_text(drawn) or "not UTF-8" in msg or "binary content" in msg, msg
    else:
        assert _is_text(drawn), drawn


BAD = b"\xff\xfe\x00bad"


def _cli_cases(tmp: Path, run):
    def bad(name: str) -> Path:
        p = tmp / name
        p.write_bytes(BAD)
        return p

    folder = tmp / "imgs"
    folder.mkdir()
    (folder / "manifest.csv").write_bytes(BAD)
    cal = tmp / "cal"
    cal.mkdir()
    (cal / "labels.csv").write_bytes(BAD)
    suite = tmp / "good.yaml"
    suite.write_text(SUITE)
    return {
        "suites validate": (["suites", "validate", str(bad("s.yaml"))], "s.yaml"),
        "sample --suite": (
            [
                "sample",
                "--suite",
                str(bad("s2.yaml")),
                "--out",
                str(tmp / "o"),
                "--generator",
                write_generator(tmp / "g"),
            ],
            "s2.yaml",
        ),
        "sample --generator folder:": (
            ["sample", "--suite", str(suite), "--out", str(tmp / "o"), "--generator", f"folder:{folder}"],
            "manifest.csv",
        ),
        "gate --rules": (["gate", str(tmp / "no-run"), "--rules", str(bad("rules.yaml"))], "rules.yaml"),
        "world render --bias-spec": (
            ["world", "render", "--n", "2", "--out", str(tmp / "w"), "--bias-spec", str(bad("spec.yaml"))],
            "spec.yaml",
        ),
        "train --preset": (
            ["train", "--preset", str(bad("preset.json")), "--out", str(tmp / "ck")],
            "preset.json",
        ),
        "audit bias --reference": (
            [
                "audit",
                "bias",
                str(run()),
                "--probe",
                "oracle-presentation",
                "--reference",
                str(bad("ref.csv")),
                "--no-progress",
            ],
            "ref.csv",
        ),
        "audit bias --training-spec": (
            [
                "audit",
                "bias",
                str(run()),
                "--probe",
                "oracle-presentation",
                "--training-spec",
                str(bad("train.yaml")),
                "--no-progress",
            ],
            "train.yaml",
        ),
        "audit bias --labels": (
            ["audit", "bias", str(run()), "--probe", "oracle-presentation", "--labels", str(bad("labels-run.csv")),
             "--no-progress"],
            "labels-run.csv",
        ),
        "audit bias --calibration": (
            [
                "audit",
                "bias",
                str(run()),
                "--probe",
                "oracle-presentation",
                "--calibration",
                str(cal),
                "--no-progress",
            ],
            "labels.csv",
        ),
    }


@pytest.mark.parametrize(
    "option",
    [
        "suites validate",
        "sample --suite",
        "sample --generator folder:",
        "gate --rules",
        "world render --bias-spec",
        "train --preset",
        "audit bias --reference",
        "audit bias --training-spec",
        "audit bias --calibration",
        "audit bias --labels",
    ],
)
def test_non_utf8_file_option_exits_2_with_one_line(option, tmp_path):
    made = {}

    def run():
        if "run" not in made:
            made["run"] = make_run(tmp_path / "run")
        return made["run"]

    cases = (
        _cli_cases(tmp_path, run) if option.startswith("audit") else _cli_cases(tmp_path, lambda: tmp_path)
    )
    args, name = cases[option]
    r = CliRunner().invoke(main, args)
    assert "Traceback" not in r.output and r.exit_code == 2, (r.exit_code, r.output, repr(r.exception))
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], r.stderr
    assert "binary content" in lines[0] or "not UTF-8" in lines[0], lines[0]
