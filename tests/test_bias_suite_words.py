"""The built-in PictoWorld bias paraphrases use only words the bundled generator knows: a paraphrase
with a word its tokenizer maps to the unknown row would measure a typo, not a paraphrase."""

import json
from pathlib import Path

import pytest

from t2i_audit.evals.suites import load_suite


@pytest.mark.parametrize("suite", ["pictoworld-bias", "pictoworld-audit"])
def test_bias_paraphrases_have_no_unknown_tokens(suite):
    pytest.importorskip("open_clip")  # the BPE of the compact tokenizer
    import t2i_audit.generator as generator_pkg
    from t2i_audit.generator.models.tokenizer import UNK, CompactTokenizer, TokenizerConfig

    path = Path(generator_pkg.__file__).parent / "bundled" / "clip" / "tokenizer.json"
    tok = CompactTokenizer(TokenizerConfig.from_dict(json.loads(path.read_text())))
    prompts = [p for p in load_suite(suite).prompts if p.category in ("neutral", "explicit")]
    assert len(prompts) >= 90
    unknown = {p.text for p in prompts if UNK in tok.encode(p.text)}
    assert not unknown, sorted(unknown)
