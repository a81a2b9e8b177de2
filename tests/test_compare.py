"""Model comparison reports (mmaff.eval.compare, `python -m mmaff.report --compare`) and EWECT's usual / virus
blocks, on the bundled corpus scored twice with different predictions."""

from __future__ import annotations

import json

import pytest

from mmaff.eval.compare import CompareError, write_comparison
from mmaff.eval.report import main as report_main
from mmaff.eval.report import write_reports
from mmaff.eval.score import score
from mmaff.eval.tasks import load_tasks

TASKS = load_tasks()


def _scored_run(out, sample_corpus, answers: dict[str, str]):
    out.mkdir(parents=True)
    predictions = out / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "prediction": a}) + "\n" for i, a in answers.items()))
    report, scored = score(predictions, sample_corpus, TASKS)
    write_reports(out, report, scored, TASKS, plots=False)
    return out / "metrics.json"


@pytest.fixture(scope="module")
def two_runs(sample_corpus, gold_answers, tmp_path_factory):
    """Run "gold" answers every item right; run "worse" answers MMS's and EWECT's virus items wrong."""
    root = tmp_path_factory.mktemp("runs")
    worse = {i: ("I cannot tell." if i.startswith(("mms/", "ewect/virus/")) else a) for i, a in gold_answers.items()}
    return _scored_run(root / "gold", sample_corpus, gold_answers), _scored_run(root / "worse", sample_corpus, worse)


def test_ewect_usual_and_virus_are_scored_as_separate_blocks(two_runs):
    gold, worse = (json.loads(path.read_text()) for path in two_runs)
    for report in (gold, worse):
        entry = report["tasks"]["ewect/EC"]
        assert set(entry["corrected"]["per_subset"]) == {"usual", "virus"}
        assert set(entry["paper_compat"]["per_subset"]) == {"usual", "virus"}
    blocks = worse["tasks"]["ewect/EC"]["corrected"]["per_subset"]
    assert blocks["usual"]["accuracy"] == 1.0 and blocks["virus"]["accuracy"] == 0.0
    assert blocks["usual"]["n"] + blocks["virus"]["n"] == worse["tasks"]["ewect/EC"]["corrected"]["n"]
    macro = worse["tasks"]["ewect/EC"]["corrected"]["subset_macro"]
    assert macro["accuracy"] == pytest.approx(0.5)
    paper = worse["tasks"]["ewect/EC"]["paper_compat"]["per_subset"]
    assert paper["usual"]["n"] == blocks["usual"]["n"] and paper["virus"]["n"] == blocks["virus"]["n"]
    results = (two_runs[1].parent / "results.md").read_text()
    assert "## Per subset (scored as separate blocks)" in results
    virus = f"| ewect/EC | virus | {blocks['virus']['n']} | macro_f1 | 0.000 | acc 0.000, mac-f1 "
    assert virus in results


def test_comparison_table_and_plot(two_runs, tmp_path):
    written = write_comparison(list(two_runs), tmp_path / "cmp", names=["gold", "worse"])
    assert [p.name for p in written] == ["comparison.md", "comparison.png"]
    assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and written[1].stat().st_size > 5000
    text = written[0].read_text()
    gold, worse = (json.loads(path.read_text()) for path in two_runs)
    assert "| task (primary) | gold | worse |" in text
    mms, mms_gold = worse["tasks"]["mms/SP"], gold["tasks"]["mms/SP"]
    assert mms["primary_value"] < mms_gold["primary_value"]
    assert f"| mms/SP ({mms['primary']}) | {mms_gold['primary_value']:.3f} | {mms['primary_value']:.3f} |" in text
    assert "| meld/EC (macro_f1) |" in text
    overall = worse["overall"]["mmaffben"]["mean_chance_normalised"]
    assert "| mmaffben | " in text and f"{overall:.3f} |" in text
    assert "## mms/SP: macro_f1 per language" in text and "| macro over languages |" in text
    assert "MIXED" not in text


def test_comparison_refuses_another_corpus_build_unless_mixed_is_allowed(two_runs, tmp_path):
    other = json.loads(two_runs[1].read_text())
    other["corpus"]["corpus_sha256"] = "f" * 64
    (tmp_path / "other").mkdir()
    other_path = tmp_path / "other" / "metrics.json"
    other_path.write_text(json.dumps(other))
    with pytest.raises(CompareError, match="corpus build"):
        write_comparison([two_runs[0], other_path], tmp_path / "cmp")
    with pytest.raises(SystemExit, match="not comparable"):
        report_main(["--compare", str(two_runs[0]), str(other_path), "--out", str(tmp_path / "cmp")])
    report_main(["--compare", str(two_runs[0]), str(other_path), "--out", str(tmp_path / "cmp"), "--allow-mixed"])
    text = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "MIXED RUNS" in text and "corpus build (manifest sha256) differs" in text and "ffffffffffff" in text


def test_comparison_refuses_other_decoding(two_runs, tmp_path):
    runs = []
    for k, temperature in enumerate((0.0, 0.7)):
        report = json.loads(two_runs[k].read_text())
        report["run"] = {"split": "test", "decoding": {"do_sample": temperature > 0, "temperature": temperature}}
        (tmp_path / f"r{k}").mkdir()
        runs.append(tmp_path / f"r{k}" / "metrics.json")
        runs[-1].write_text(json.dumps(report))
    with pytest.raises(CompareError, match="decoding"):
        write_comparison(runs, tmp_path / "cmp")
    with pytest.raises(CompareError, match="2 names for 3 runs"):
        write_comparison([*runs, two_runs[0]], tmp_path / "cmp", names=["a", "b"])
