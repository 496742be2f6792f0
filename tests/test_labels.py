"""Human labels: the stratified sample, the labelling page's HTML, and labels.csv validation."""

import base64
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from t2i_audit.audits.labels.labelling import draw_label_sample, page_items, read_labels, write_labelling_page
from t2i_audit.errors import InputError

FIX = Path(__file__).parent / "fixtures"
PNG = (FIX / "run_a" / "images" / "p000-s0.png").read_bytes()
XSS = '<script>alert("pwned")</script> & "x"'


def manifest(sizes=(("chef", 50), ("nurse", 30), ("pilot", 4)), seed=0) -> pd.DataFrame:
    rows = [{"image_id": f"{g}-{i:03d}", "profession": g, "path": f"images/{g}-{i}.png"}
            for g, k in sizes for i in range(k)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def runs(groups) -> int:
    return 1 + sum(a != b for a, b in zip(groups[:-1], groups[1:]))


def test_per_group_sample_takes_n_each_or_all_and_says_so():
    s = draw_label_sample(manifest(), "profession", 10, per_group=True, seed=1)
    assert s.groupby("group").size().to_dict() == {"chef": 10, "nurse": 10, "pilot": 4}
    assert s["image_id"].is_unique and set(s["image_id"]) <= set(manifest()["image_id"])
    assert (s["note"][s["group"] == "pilot"] != "").all() and (s["note"][s["group"] != "pilot"] == "").all()
    assert "'pilot' has only 4 images" in s.attrs["note"] and "24 images from 3 groups" in s.attrs["design"]
    # shown shuffled, not in blocks: 3 groups sorted would be 3 runs
    assert runs(list(s["group"])) >= 10


def test_proportional_sample_allocates_by_size():
    s = draw_label_sample(manifest(), "profession", 21, per_group=False, seed=2)
    counts = s.groupby("group").size().to_dict()
    assert counts == {"chef": 13, "nurse": 7, "pilot": 1} and len(s) == 21  # 12.5, 7.5, 1 by largest remainder
    whole = draw_label_sample(manifest(), "profession", 500, per_group=False, seed=2)
    assert len(whole) == 84 and "only 84 images in all" in whole.attrs["note"]


def test_sample_is_seeded_and_ignores_row_order():
    a = draw_label_sample(manifest(seed=0), "profession", 10, per_group=True, seed=7)
    b = draw_label_sample(manifest(seed=5), "profession", 10, per_group=True, seed=7)
    c = draw_label_sample(manifest(seed=0), "profession", 10, per_group=True, seed=8)
    assert list(a["image_id"]) == list(b["image_id"])
    assert set(a["image_id"]) != set(c["image_id"])


def test_within_group_draw_is_uniform():
    """Simple random sampling: each of 30 nurses is drawn with probability 10/30 over 300 seeds."""
    m = manifest((("nurse", 30),))
    hits = pd.concat([draw_label_sample(m, "profession", 10, seed=s)["image_id"] for s in range(300)])
    freq = hits.value_counts().reindex(m["image_id"], fill_value=0).to_numpy()
    sd = np.sqrt(300 * (1 / 3) * (2 / 3))
    assert freq.sum() == 3000 and np.abs(freq - 100).max() < 4.5 * sd, freq


def test_callable_groups_leave_out_none():
    m = pd.read_parquet(FIX / "run_a" / "manifest.parquet")

    def prof(row):
        return json.loads(row["expect"]).get("person", {}).get("profession")

    s = draw_label_sample(m, prof, 2, per_group=True, seed=0)
    assert s.groupby("group").size().to_dict() == {"chef": 2, "firefighter": 2, "police officer": 2}
    assert s.attrs["left_out"] == 12
    items = page_items(FIX / "run_a", s)
    assert [i for i, _, _ in items] == list(s["image_id"]) and all(p.startswith(b"\x89PNG") for _, p, _ in items)


@pytest.mark.parametrize("kwargs, needle", [
    ({"group_of": "profesion"}, "did you mean 'profession'"),
    ({"n": 0}, "positive whole number"),
    ({"group_of": lambda row: None}, "every image's group is None"),
    ({"group_of": 3}, "pass a column name or a function"),
])
def test_sample_errors(kwargs, needle):
    args = {"group_of": "profession", "n": 5, **kwargs}
    with pytest.raises(InputError, match=re.escape(needle)):
        draw_label_sample(manifest(), args["group_of"], args["n"], seed=0)


def test_sample_rejects_repeated_image_ids_and_bad_images(tmp_path):
    m = manifest()
    with pytest.raises(InputError, match="repeats image_id"):
        draw_label_sample(pd.concat([m, m.head(1)]), "profession", 5)
    run = tmp_path / "run"
    (run / "images").mkdir(parents=True)
    (run / "images" / "x.png").write_bytes(PNG)
    sample = pd.DataFrame({"image_id": ["x"], "path": ["images/x.png"], "sha256": ["0" * 64], "text": ["t"]})
    with pytest.raises(InputError, match="does not match the manifest's sha256"):
        page_items(run, sample)
    sample["sha256"] = hashlib.sha256(PNG).hexdigest()
    assert page_items(run, sample) == [("x", PNG, "t")]


def page(tmp_path, show_prompt=False, classes=("man", "woman", XSS)) -> str:
    items = [("img-1", PNG, XSS), ("img-2", PNG, None)]
    path = write_labelling_page(tmp_path / "p.html", items, "presentation", list(classes), "run<1>",
                                show_prompt=show_prompt)
    return path.read_text(encoding="utf-8")


def embedded(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="t2i-data">(.*?)</script>', html, re.S)[1])


def test_page_is_self_contained_and_escaped(tmp_path):
    html = page(tmp_path)
    assert "http://" not in html and "https://" not in html
    assert "<script>alert" not in html and html.count("<script") == 2
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &quot;x&quot;" in html  # legend text
    assert "run&lt;1&gt;" in html and "image-rendering:pixelated" in html
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)[1]
    script = re.search(r"<script>(.*?)</script>", html, re.S)[1]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert csp.startswith("default-src 'none'; ") and f"script-src 'sha256-{digest}';" in csp
    assert "img-src data:;" in csp and "unsafe" not in csp
    data = embedded(html)
    assert data["classes"][2] == XSS and data["run_id"] == "run<1>"
    assert [base64.b64decode(i["src"].split(",", 1)[1]) for i in data["items"]] == [PNG, PNG]
    # captions are not embedded by default: the text occurs only as the class (legend + JSON)
    assert [i["caption"] for i in data["items"]] == [None, None] and html.count("pwned") == 2


def test_prompt_is_embedded_only_when_asked(tmp_path):
    html = page(tmp_path, show_prompt=True, classes=("man", "woman"))
    assert [i["caption"] for i in embedded(html)["items"]] == [XSS, None]
    assert "<script>alert" not in html and html.count("<script") == 2
    assert "pwned" not in page(tmp_path, classes=("man", "woman"))


@pytest.mark.parametrize("classes, items, needle", [
    (["man", "unsure"], None, "not 'unsure' or 'no person'"),
    (["man", "man"], None, "must be distinct"),
    ([str(i) for i in range(10)], None, "pass 1 to 9"),
    (["man"], [("a", b"GIF89a", None)], "image 'a' is not PNG bytes"),
    (["man"], [], "no items to label"),
    (["man"], [("a", PNG, None), ("a", PNG, None)], "'a' appears twice"),
])
def test_page_errors(tmp_path, classes, items, needle):
    with pytest.raises(InputError, match=re.escape(needle)):
        write_labelling_page(tmp_path / "p.html", [("a", PNG, None)] if items is None else items, "skin",
                             classes, "run_a")


def write(tmp_path, text: str | bytes) -> Path:
    p = tmp_path / "labels.csv"
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def test_read_labels_round_trip(tmp_path):
    df = pd.DataFrame({"image_id": ["a", "b", "c", "a"], "attribute": ["skin", "skin", "skin", "presentation"],
                       "label": ["light", "unsure", "no person", "a, \"b\""]})
    p = tmp_path / "labels.csv"
    df.to_csv(p, index=False)
    got = read_labels(p, classes={"skin": ["light", "dark"], "presentation": ['a, "b"']}, image_ids="abc")
    pd.testing.assert_frame_equal(got, df)
    bom = write(tmp_path, "\ufeffimage_id,attribute,label\nNA,skin,None\n")  # Excel's BOM; no NA guessing
    assert read_labels(bom, classes=["None"]).iloc[0].tolist() == ["NA", "skin", "None"]


@pytest.mark.parametrize("text, kwargs, needle", [
    ("image_id,attribute\na,skin\n", {}, "no column 'label'"),
    ("image_id,attribute,lable\na,skin,dark\n", {}, "no column 'label': rename column 'lable' to 'label'"),
    ("image_id,attribute,label,x\na,skin,dark,1\n", {}, "the header must be exactly image_id,attribute,label"),
    ("image_id,attribute,label\na,skin,drak\n", {"classes": ["light", "dark"]},
     "line 2: unknown label 'drak' for 'skin' (did you mean 'dark'?)"),
    ("image_id,attribute,label\na,skn,dark\n", {"classes": {"skin": ["dark"]}},
     "unknown attribute 'skn' (did you mean 'skin'?)"),
    ("image_id,attribute,label\na,skin,dark\nb,skin,dark\na,skin,light\n", {},
     "line 4: image 'a' labelled twice for 'skin'"),
    ("image_id,attribute,label\na,skin,dark\np000-s7,skin,dark\n", {"image_ids": ["a", "p000-s1"]},
     "line 3: image 'p000-s7' is not in the run (did you mean 'p000-s1'?)"),
    ("image_id,attribute,label\na,skin, \n", {}, "line 2: empty label"),
    ("", {}, "is empty"),
    (b"image_id,attribute,label\na,skin,d\xe9rk\n", {}, "byte offset 33 (line 2) is not UTF-8"),
])
def test_read_labels_errors(tmp_path, text, kwargs, needle):
    with pytest.raises(InputError, match=re.escape(needle)) as e:
        read_labels(write(tmp_path, text), **kwargs)
    assert "\n" not in str(e.value)


def test_read_labels_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_labels(tmp_path / "nope.csv")
