"""Write the binary sample fixtures (files that cannot be hand-edited) deterministically.

    .venv/bin/python data_builders/sample_raw/make_binary_samples.py

Texts are invented. Running it twice gives byte-identical files (fixed row order, no timestamps); the
outputs are committed, so tests do not run this script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

HERE = Path(__file__).resolve().parent
# The Hub layout: data/train-*.parquet (the builder reads *.parquet at any depth under mms/).
MMS_PARQUET = Path("mms", "data", "train-00000-of-00001.parquet")

# MMS (Brand24/mms): (language, label 0 negative / 1 neutral / 2 positive, text, original_dataset, domain)
MMS_ROWS = [
    ("en", 2, "The battery lasts all week, very happy with it", "fixture_reviews", "products"),
    ("en", 0, "Screen cracked on the second day", "fixture_reviews", "products"),
    ("en", 1, "The package arrived on Tuesday", "fixture_reviews", "products"),
    ("en", 2, "Lovely staff and a quiet room", "fixture_hotels", "hotels"),
    ("en", 0, "The shower was cold every morning", "fixture_hotels", "hotels"),
    ("en", 2, "Best pizza I have had in months", "fixture_food", "food"),
    ("en", 1, "They open at nine on weekdays", "fixture_food", "food"),
    ("en", 0, "Waited an hour and the soup was salty", "fixture_food", "food"),
    ("en", 2, "The update fixed every bug I reported", "fixture_apps", "apps"),
    ("en", 0, "App crashes whenever I open the camera", "fixture_apps", "apps"),
    ("en", 1, "", "fixture_apps", "apps"),  # empty text -> empty_text
    ("en", 3, "Label three does not exist in this scheme", "fixture_apps", "apps"),  # -> label_not_in_label_set
    ("en", 2, "Great match last night, what a goal", "fixture_tweets", "social"),
    ("en", 0, "Traffic on the bridge is awful again", "fixture_tweets", "social"),
    ("en", 1, "Meeting moved to the small room", "fixture_tweets", "social"),
    ("en", 2, "The battery lasts all week, very happy with it!", "fixture_tweets", "social"),  # duplicate text
    ("en", 2, "My new headphones sound wonderful", "fixture_reviews", "products"),
    ("en", 0, "The charger stopped working after a month", "fixture_reviews", "products"),
    ("en", 1, "It comes in blue and grey", "fixture_reviews", "products"),
    ("en", 2, "Friendly driver and a clean car", "fixture_tweets", "social"),
    ("en", 0, "Refund still not processed after three weeks", "fixture_reviews", "products"),
    ("en", 2, "Sunny day at the lake, perfect", "fixture_tweets", "social"),
    ("en", 1, "The film starts at eight", "fixture_tweets", "social"),
    ("en", 0, "Noisy neighbours kept us up all night", "fixture_hotels", "hotels"),
    ("en", 2, "The garden view from our balcony was stunning", "fixture_hotels", "hotels"),
    ("en", 1, "Breakfast is served in the lobby", "fixture_hotels", "hotels"),
    ("en", 0, "Rude reply from customer service", "fixture_reviews", "products"),
    ("en", 2, "This keyboard feels solid and types quietly", "fixture_reviews", "products"),
    ("en", 0, "The lid broke when I first opened it", "fixture_reviews", "products"),
    ("en", 2, "Fast delivery and careful packing", "fixture_reviews", "products"),
    ("pl", 2, "Bardzo dobra obsługa i szybka dostawa", "fixture_pl", "products"),
    ("pl", 0, "Produkt przyszedł uszkodzony", "fixture_pl", "products"),
    ("pl", 1, "Paczka jest w punkcie odbioru", "fixture_pl", "products"),
    ("pl", 2, "Świetny film, polecam każdemu", "fixture_pl", "social"),
    ("pl", 0, "Nudna książka, nie skończyłem jej", "fixture_pl", "social"),
    ("pl", 1, "Sklep jest otwarty do osiemnastej", "fixture_pl", "products"),
    ("pl", 2, "Pyszne pierogi w tej restauracji", "fixture_pl", "food"),
    ("pl", 0, "Kelner o nas zapomniał", "fixture_pl", "food"),
    ("pl", 1, "Pociąg odjeżdża o siódmej", "fixture_pl", "social"),
    ("pl", 2, "Aplikacja działa płynnie", "fixture_pl", "apps"),
    ("de", 2, "Das Hotel war sauber und ruhig", "fixture_de", "hotels"),
    ("de", 0, "Der Akku hält nur einen Tag", "fixture_de", "products"),
    ("de", 1, "Die Lieferung kommt am Montag", "fixture_de", "products"),
    ("de", 2, "Tolles Konzert gestern Abend", "fixture_de", "social"),
    ("de", 0, "Das Essen war kalt und teuer", "fixture_de", "food"),
    ("de", 1, "Das Formular liegt am Empfang", "fixture_de", "hotels"),
    ("de", 2, "Sehr bequeme Schuhe", "fixture_de", "products"),
    ("de", 0, "Die App stürzt ständig ab", "fixture_de", "apps"),
    ("ar", 2, "خدمة ممتازة وسريعة", "fixture_ar", "products"),
    ("ar", 0, "المنتج سيء جدا", "fixture_ar", "products"),
    ("ar", 1, "المتجر يفتح في الصباح", "fixture_ar", "products"),
    ("ar", 2, "فيلم رائع وممتع", "fixture_ar", "social"),
    ("ar", 0, "الطعام كان باردا", "fixture_ar", "food"),
    ("ar", 1, "الاجتماع يوم الأحد", "fixture_ar", "social"),
    ("zh", 2, "质量很好，物流也快", "fixture_zh", "products"),
    ("zh", 0, "屏幕有划痕，很失望", "fixture_zh", "products"),
    ("zh", 1, "快递明天到", "fixture_zh", "products"),
    ("ZH", 2, "服务员很热情", "fixture_zh", "food"),  # upper-case code is lower-cased
    ("ko", 2, "배송이 빨라서 좋아요", "fixture_ko", "products"),  # not an MMS language -> unknown_language
]


# MMS has no official split and its seeded bands are sized for the release (2.3M en rows: a test band of 0.02%
# of the hash space), so a plain sample would be all train. These rows get the first id from 100000 + 100 * row
# whose seeded hash falls in the band named, so the sample has test and validation rows in each language.
MMS_EVAL_ROWS = {
    3: "validation", 4: "test", 5: "test", 6: "validation",  # en
    31: "test", 32: "validation",  # pl
    41: "test", 42: "validation", 43: "test",  # de
    49: "test", 50: "validation",  # ar
    55: "test",  # zh
}  # fmt: skip


def _id_in_band(language: str, split: str, start: int, taken: set[int]) -> int:
    """The first free id from `start` whose seeded hash puts its row in `split` of its language's bands."""
    from mmaff.data.dispositions import SeededSplits
    from mmaff.data.registry import load_registry

    cfg = load_registry()["mms"].splits
    test_end, validation_end = (int(end[0]) for end in SeededSplits.from_config(cfg).limits([language]))
    low, high = (0, test_end) if split == "test" else (test_end, validation_end)
    source_id = start
    while source_id in taken or not low <= xxhash.xxh3_64_intdigest(str(source_id).encode(), cfg["seed"]) < high:
        source_id += 1
    taken.add(source_id)
    return source_id


def mms_ids() -> list[int]:
    taken: set[int] = set()
    return [
        _id_in_band(row[0].lower(), MMS_EVAL_ROWS[i], 100_000 + 100 * i, taken) if i in MMS_EVAL_ROWS else 7000 + 3 * i
        for i, row in enumerate(MMS_ROWS)
    ]


def mms_table() -> pa.Table:
    n = len(MMS_ROWS)
    features = {
        "_id": {"dtype": "int32", "_type": "Value"},
        "text": {"dtype": "string", "_type": "Value"},
        "label": {"names": ["negative", "neutral", "positive"], "_type": "ClassLabel"},
        "original_dataset": {"dtype": "string", "_type": "Value"},
        "domain": {"dtype": "string", "_type": "Value"},
        "language": {"dtype": "string", "_type": "Value"},
        "Family": {"dtype": "string", "_type": "Value"},
        "cleanlab_self_confidence": {"dtype": "float32", "_type": "Value"},
    }
    columns = {
        "_id": pa.array(mms_ids(), pa.int32()),
        "text": pa.array([r[2] for r in MMS_ROWS], pa.string()),
        "label": pa.array([r[1] for r in MMS_ROWS], pa.int64()),
        "original_dataset": pa.array([r[3] for r in MMS_ROWS], pa.string()),
        "domain": pa.array([r[4] for r in MMS_ROWS], pa.string()),
        "language": pa.array([r[0] for r in MMS_ROWS], pa.string()),
        "Family": pa.array(["fixture"] * n, pa.string()),  # one of the typology columns the builder skips
        "cleanlab_self_confidence": pa.array([round(0.5 + (i % 10) / 20, 2) for i in range(n)], pa.float32()),
    }
    metadata = {b"huggingface": json.dumps({"info": {"features": features}}, sort_keys=True).encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


def write_mms() -> Path:
    path = HERE / MMS_PARQUET
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(mms_table(), path, compression="zstd", row_group_size=32)  # two row groups
    return path


def main() -> None:
    for path in (write_mms(),):
        print(f"wrote {path.relative_to(HERE)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
