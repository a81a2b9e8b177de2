import csv
import pickle
import shutil

import pytest
from helpers import assert_accounting, build_datasets, registry_spec

from data_builders import samsemo
from mmaff.data.build import SAMPLE_RAW
from mmaff.data.builder import BuildContext
from mmaff.data.rawio import MissingData, RawFormatError

SAMPLE = SAMPLE_RAW / "samsemo"
TSV = "samsemo/samsemo.tsv"
LABELS = registry_spec("samsemo").subtasks["EC"].label_set


def test_samsemo_fixture(tmp_path):
    built = build_datasets(tmp_path, {"samsemo": {}})
    assert_accounting(built, "samsemo")
    golds = {rid: (r["split"], r["language"], r["gold"]) for rid, r in built.records.items()}
    assert golds == {
        "samsemo/en/EC/en_fx_01": ("train", "en", ["happiness"]),
        "samsemo/en/EC/en_fx_02": ("train", "en", ["sadness", "surprise"]),
        "samsemo/en/EC/en_fx_03": ("validation", "en", ["neutral"]),
        "samsemo/pl/EC/pl_fx_01": ("train", "pl", ["happiness", "other emotions"]),
        "samsemo/pl/EC/pl_fx_02": ("validation", "pl", ["disgust"]),
        "samsemo/de/EC/de_fx_01": ("train", "de", ["happiness"]),  # "Joy"
        "samsemo/de/EC/de_fx_02": ("test", "de", ["other emotions"]),  # "other"
    }
    first = built.records["samsemo/en/EC/en_fx_01"]
    assert first["text"] == 'I can\'t believe we actually won, "champions"!'
    assert first["videos"] == ["media/samsemo/EN/en_fx_01.mp4"] and first["images"] == []
    assert (built.out / first["videos"][0]).read_bytes() == (SAMPLE / "EN/en_fx_01.mp4").read_bytes()
    assert first["media"][0] | {"tokens": 0} == {
        "kind": "video", "frames": 8, "fps": 10.0, "width": 64, "height": 48, "sampled_frames": 4, "tokens": 0,
    }  # fmt: skip
    user = first["messages"][-2]["content"]
    assert user[0] == {"type": "video"} and user[1]["text"].endswith(
        'Content: I can\'t believe we actually won, "champions"!\nAnswer with a comma-separated list of "number. emotion".'
    )
    assert first["messages"][-1]["content"][0]["text"] == "1. happiness"
    assert (
        built.records["samsemo/pl/EC/pl_fx_01"]["messages"][-1]["content"][0]["text"]
        == "1. happiness, 99. other emotions"
    )
    assert first["source"] == {
        "file": TSV,
        "line": 2,
        "source_id": "en_fx_01",
        "split_file": "samsemo/splits/train_split_EN.txt",
        "aggregated_emotions": "happiness",
        "annotator_emotions": [["happiness"], ["happiness"], ["surprise", "happiness"]],
    }
    # data/<LANG>/ layout for DE
    assert built.records["samsemo/de/EC/de_fx_01"]["videos"] == ["media/samsemo/data/DE/de_fx_01.mp4"]
    # the same transcript "Yes." in train and validation: different clips, both kept (no text dedup)
    assert built.records["samsemo/en/EC/en_fx_02"]["text"] == built.records["samsemo/en/EC/en_fx_03"]["text"] == "Yes."
    assert built.rejects_at(TSV) == {
        5: "no_label",
        6: "in_several_splits",  # train_split_EN and test_split_EN
        7: "missing_media",  # no EN/en_fx_06.mp4 (checked by the pipeline)
        8: "not_in_any_split",
        11: "language_mismatch",  # tsv DE, listed in train_split_PL
        14: "too_many_labels",
    }
    assert built.rejects_at("samsemo/splits/test_split_EN.txt") == {3: "not_in_metadata"}
    files = built.files("samsemo")
    assert files[TSV]["rows"] == 13 and files[TSV]["written"] == 7
    inputs = set(built.manifest["datasets"]["samsemo"]["inputs"])
    assert TSV in inputs and "samsemo/splits/valid_split_PL.txt" in inputs and len(inputs) == 8


def _raw_copy(tmp_path):
    raw = tmp_path / "raw" / "samsemo"
    shutil.copytree(SAMPLE, raw)
    return raw


def _rows_from_tsv(raw):
    with open(raw / "samsemo.tsv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _context(raw_root, tmp_path, **options):
    return BuildContext(registry_spec("samsemo"), raw_root, frozenset({"EC"}), options, stage=tmp_path / "stage")


class _Payload:
    """A pickle that runs code when loaded: it creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_samsemo_pickle_needs_the_flag(tmp_path):
    raw = _raw_copy(tmp_path)
    rows = _rows_from_tsv(raw)
    (raw / "samsemo.tsv").unlink()
    (raw / "metadata").mkdir()
    marker = tmp_path / "pickle-ran"
    (raw / "metadata" / "meta.pkl").write_bytes(pickle.dumps([_Payload(marker)]))
    with pytest.raises(MissingData, match="allow_pickle: true"):
        list(samsemo.build(_context(raw.parent, tmp_path)))
    assert not marker.exists()  # never unpickled without the flag
    (raw / "metadata" / "meta.pkl").write_bytes(pickle.dumps(rows))
    built = build_datasets(tmp_path, {"samsemo": {"options": {"allow_pickle": True}}}, raw_root=raw.parent)
    assert_accounting(built, "samsemo")
    assert built.records["samsemo/en/EC/en_fx_02"]["gold"] == ["sadness", "surprise"]
    assert built.records["samsemo/en/EC/en_fx_02"]["source"]["file"] == "samsemo/metadata/meta.pkl"
    assert built.rejects_at("samsemo/metadata/meta.pkl")[4] == "no_label"  # the pickle's 4th row


def test_samsemo_pickle_shapes():
    rows = [{"utterance_id": "a", "language": "EN"}, {"utterance_id": "b", "language": "PL"}]
    assert samsemo._pickle_records(rows, "x") == rows
    assert samsemo._pickle_records({"a": {"language": "EN"}, "b": {"language": "PL"}}, "x") == rows
    assert samsemo._pickle_records({"utterance_id": ["a", "b"], "language": ["EN", "PL"]}, "x") == rows
    pandas = pytest.importorskip("pandas")
    assert samsemo._pickle_records(pandas.DataFrame(rows), "x") == rows
    with pytest.raises(RawFormatError):
        samsemo._pickle_records("text", "x")


def test_samsemo_missing_files(tmp_path):
    raw = tmp_path / "raw" / "samsemo"
    raw.mkdir(parents=True)
    with pytest.raises(MissingData, match="samsemo.tsv"):
        list(samsemo.build(_context(raw.parent, tmp_path)))
    shutil.copyfile(SAMPLE / "samsemo.tsv", raw / "samsemo.tsv")
    with pytest.raises(MissingData, match="splits"):
        list(samsemo.build(_context(raw.parent, tmp_path)))
    (raw / "splits").mkdir()
    (raw / "splits" / "dev_split_EN.txt").write_text("en_fx_01\n", encoding="utf-8")
    with pytest.raises(RawFormatError, match="unknown split 'dev'"):
        list(samsemo.build(_context(raw.parent, tmp_path)))


def test_samsemo_missing_column(tmp_path):
    raw = _raw_copy(tmp_path)
    text = (raw / "samsemo.tsv").read_text(encoding="utf-8")
    (raw / "samsemo.tsv").write_text(text.replace("aggregated_emotions", "emotions", 1), encoding="utf-8")
    with pytest.raises(RawFormatError, match="aggregated_emotions"):
        list(samsemo.build(_context(raw.parent, tmp_path)))


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("happiness", (["happiness"], "", "")),
        ("Surprise; Sadness", (["sadness", "surprise"], "", "")),  # label-set order
        ("['happy', 'surprised']", (["happiness", "surprise"], "", "")),
        (["disgust", "Other Emotions"], (["disgust", "other emotions"], "", "")),
        ("1, 5", (["happiness", "surprise"], "", "")),  # MMAFFBen ids
        (99, (["other emotions"], "", "")),
        ("neutral", (["neutral"], "", "")),
        ("joy|happiness", (["happiness"], "", "")),  # two names of one label
        ("", (None, "no_label", "")),
        (float("nan"), (None, "no_label", "")),
        ("nan", (None, "no_label", "")),
        ("neutral, anger", (None, "neutral_with_emotion", "['anger', 'neutral']")),
        ("anger, fear, disgust", (None, "too_many_labels", "['anger', 'disgust', 'fear']")),
        ("contempt", (None, "label_not_in_label_set", "unknown emotions ['contempt']")),
        ("7", (None, "label_not_in_label_set", "unknown emotions ['7']")),
    ],
)
def test_samsemo_parse_emotions(raw, expected):
    assert samsemo.parse_emotions(raw, LABELS.labels, LABELS.ids) == expected
