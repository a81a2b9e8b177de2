import pytest
from helpers import REALDATA, assert_accounting, build_datasets


def test_goemotions_fixture(tmp_path):
    built = build_datasets(tmp_path, {"goemotions": {}})
    assert_accounting(built, "goemotions")
    rec = built.records["goemotions/en/EC/fx0001a"]
    assert rec["gold"] == ["gratitude", "love"] and rec["split"] == "train"
    assert rec["messages"][-1]["content"][0]["text"] == "15. gratitude, 18. love"
    assert built.records["goemotions/en/EC/fx0004d"]["text"] == 'She said "never again" and meant it'
    assert built.records["goemotions/en/EC/fx0101a"]["split"] == "validation"
    assert built.rejects_at("goemotions/train.tsv") == {
        2: "train_text_in_eval_split",  # the same text (normalised) is in test.tsv
        6: "bad_column_count",
        7: "empty_text",
        9: "label_not_in_label_set",
    }


@pytest.mark.realdata
def test_goemotions_realdata(tmp_path):
    src = REALDATA / "goemotions"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    raw = tmp_path / "raw" / "goemotions"
    raw.mkdir(parents=True)
    (raw / "emotions.txt").write_bytes((src / "emotions.txt").read_bytes())
    (raw / "train.tsv").write_bytes((src / "train.first300.tsv").read_bytes())
    (raw / "dev.tsv").write_bytes((src / "dev.first100.tsv").read_bytes())
    built = build_datasets(tmp_path, {"goemotions": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "goemotions")
    files = built.files("goemotions")
    assert files["goemotions/train.tsv"]["rows"] == 300 and files["goemotions/dev.tsv"]["rows"] == 100
    assert len(built.by_split("train")) + sum(files["goemotions/train.tsv"]["rejected"].values()) == 300
    assert all(r["gold"] for r in built.records.values())
