"""Compare: verdicts by Welch's t-test with numbers worked out by hand, what an inconclusive
verdict can resolve, structure values read directly, published values always shown."""
import json

import pytest
from scipy import stats

from repro import db as dbm
from repro.cli import main
from repro.compare import Comparison, _compare, compare
from repro.config import resolve
from repro.plugins import discover, get_paper


def judge(a, b, op=">", m=1, deterministic=False, table=None):
    table = table or get_paper("bulat2019").table("1")
    return _compare(table, "pckh_total", "lrelu", op, "relu", a, b, deterministic, m)


def test_a_clear_difference_holds():
    # diff 5, s = 1 each, se = sqrt(2/3), t = 6.12, df = 4: one-sided p = 0.0018
    c = judge([10, 11, 12], [5, 6, 7])
    assert c.outcome == "holds" and c.p_value == pytest.approx(0.0018011, abs=1e-6) and c.difference == 5


def test_a_clear_difference_the_other_way_fails():
    c = judge([5, 6, 7], [10, 11, 12])
    assert c.outcome == "fails" and "significant the other way" in c.detail


def test_the_other_way_is_judged_at_alpha_over_the_claims_comparisons():
    # diff -1.9, se = sqrt(2/3), t = -2.33, df = 4: p = 0.040 the other way
    assert judge([1, 2, 3], [2.9, 3.9, 4.9], m=1).outcome == "fails"  # 0.040 < 0.05
    assert judge([1, 2, 3], [2.9, 3.9, 4.9], m=2).outcome == "inconclusive"  # 0.040 > 0.05 / 2


def test_an_inconclusive_comparison_says_what_the_seeds_could_resolve():
    # diff 1, s = 2 each, se = 1.633, df = 4: p = 0.287; resolvable (t.95 + t.80 at df 4) * se =
    # (2.132 + 0.941) * 1.633 = 5.02; the published effect lrelu - relu = 78.1 - 76.3 = 1.8 needs
    # n with (t.95 + t.80 at df 2(n-1)) * sqrt(8 / n) <= 1.8: n = 16 gives 1.804, n = 17 gives 1.747.
    c = judge([10, 12, 14], [9, 11, 13])
    assert c.outcome == "inconclusive" and c.p_value == pytest.approx(0.28670, abs=1e-5)
    assert c.resolvable == pytest.approx(5.0179, abs=1e-3)
    assert c.published_effect == pytest.approx(1.8) and c.seeds_needed == 17
    assert "resolvable at this spread: 5" in c.detail and "about 17 seeds a row" in c.detail


def test_a_published_effect_against_the_claim_needs_no_seeds():
    table = get_paper("bulat2019").table("1")
    c = _compare(table, "pckh_total", "baseline", ">", "relu", [10, 12, 14], [9, 11, 13], False, 1)
    # 76.6 - 76.3 = 0.3: about 8 (1.645 + 0.842)^2 / 0.3^2 = 550 seeds a row at s = 2
    assert c.published_effect == pytest.approx(0.3) and 540 < c.seeds_needed < 570
    c = _compare(table, "pckh_total", "relu", ">", "baseline", [10, 12, 14], [9, 11, 13], False, 1)
    assert c.seeds_needed is None and "not in the claimed direction" in c.detail


def test_one_seed_cannot_be_tested():
    c = judge([10], [5])
    assert c.outcome == "inconclusive" and "1 seed" in c.detail and c.p_value is None


def test_deterministic_values_are_compared_directly():
    c = judge([6.22], [3.40], op=">", deterministic=True)
    assert c.outcome == "holds" and "seed" not in c.detail and "±" not in c.detail
    assert judge([3.40], [6.22], op=">", deterministic=True).outcome == "fails"
    assert judge([3.4], [3.4], op=">=", deterministic=True).outcome == "holds"


def equivalent(a, b, margin, m=1, deterministic=False):
    table = get_paper("bulat2019").table("1")
    return _compare(table, "pckh_total", "lrelu", "~", "relu", a, b, deterministic, m, margin)


def test_nearly_the_same_is_two_one_sided_tests():
    # diff -0.1, s = 1 each, se = sqrt(2/3) = 0.8165, df = 4. Margin 3: a - b > -3: t = 2.9 / 0.8165 = 3.552;
    # a - b < 3: t = -3.1 / 0.8165 = -3.797; TOST p = the larger one-sided p = sf(3.552, 4) = 0.0119: holds.
    c = equivalent([10, 11, 12], [10.1, 11.1, 12.1], margin=3)
    assert c.outcome == "holds" and c.p_value == pytest.approx(stats.t.sf(2.9 / (2 / 3) ** 0.5, 4), rel=1e-6)
    assert "within +-3" in c.detail and "TOST p = 0.012" in c.detail and "published difference +1.8" in c.detail
    # diff 5 with margin 1: a - b > 1 at t = 4 / 0.8165 = 4.899, p = 0.004 < 0.05 / m: outside the margin.
    c = equivalent([10, 11, 12], [5, 6, 7], margin=1)
    assert c.outcome == "fails" and "significantly outside the margin" in c.detail
    # diff 1, se 1.633, margin 1: a - b < 1 at t = 0, p = 0.5: neither shown equal nor shown apart.
    assert equivalent([10, 12, 14], [9, 11, 13], margin=1).outcome == "inconclusive"
    assert equivalent([10], [10], margin=1).outcome == "inconclusive"  # one seed: no spread


def test_nearly_the_same_on_measured_values_is_the_margin_itself():
    assert equivalent([3.45], [3.40], margin=0.1, deterministic=True).outcome == "holds"
    assert equivalent([6.22], [3.40], margin=0.1, deterministic=True).outcome == "fails"


def store_runs(db_url, paper, table_id, profile, values):
    """Finished runs with the given final metrics: {(row, seed): {metric: value}}."""
    table = get_paper(paper).table(table_id)
    with dbm.session(db_url) as db:
        dbm.sync_papers(db, discover().values())
        for (row, seed), metrics in values.items():
            rc = resolve(table, table.row(row), profile, seed)
            run = dbm.RunRecord(hash=rc.hash, paper_id=paper, table_id=table_id, row_id=row, profile=profile, seed=seed,
                                config=rc.config, assumptions=rc.assumptions, status="finished")
            db.add(run)
            db.flush()
            db.add_all(dbm.MetricRecord(run_pk=run.id, name=k, value=v, step=None) for k, v in metrics.items())
        db.commit()


def test_claims_get_verdicts_from_seeds(workdir, capsys):
    base = {"baseline": 20, "relu": 18, "lrelu": 21, "prelu": 21, "prelu_rev": 30, "prelu_rev_prog": 29,
            "prelu_rev_prog_distill": 29.5, "real": 40}
    spread = {0: -1.0, 1: 0.0, 2: 1.0}
    store_runs(None, "bulat2019", "1", "proxy",
               {(row, seed): {"pckh_total": value + d} for row, value in base.items() for seed, d in spread.items()})
    [result] = compare([get_paper("bulat2019")], None, "1", "proxy")
    verdicts = {v.claim: v for v in result.verdicts}
    assert verdicts["real_above_all"].verdict == "holds"  # every difference >= 8.5 at s = 1, n = 3
    assert verdicts["relu_hurts"].verdict == "holds"  # 20 vs 18: t = 2.45, p = 0.035
    assert verdicts["prelu_beats_lrelu"].verdict == "inconclusive"  # equal means
    assert all(isinstance(c, Comparison) for v in result.verdicts for c in v.comparisons)
    assert main(["compare", "--paper", "bulat2019", "--table", "1", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    claim = next(c for c in out["claims"] if c["claim"] == "relu_hurts")
    assert claim["verdict"] == "holds" and claim["comparisons"][0]["p_value"] == pytest.approx(0.0354, abs=1e-3)
    assert "Welch" in claim["test"] and "95%" in claim["test"]
    assert main(["compare", "--paper", "bulat2019", "--table", "1"]) == 0
    text = capsys.readouterr().out
    assert "[holds] ReLU after each binary conv hurts" in text and "resolvable at this spread" in text


def test_structure_runs_judge_no_accuracy_claim_and_published_values_stay(workdir, capsys):
    store_runs(None, "bulat2019", "2", "structure", {("ref4_1stack", 0): {"params_m": 6.221}})
    [result] = compare([get_paper("bulat2019")], None, "2", None)
    assert result.verdicts == []  # its claims are on PCKh: a structure run cannot judge them
    shown = {(c.row, c.metric, c.profile) for c in result.cells}
    assert ("ref4_1stack", "params_m", "structure") in shown
    assert ("ref4_1stack", "pckh_total", None) in shown and ("ours_3stack", "pckh_total", None) in shown
    assert any("no run measures them yet" in note and "--profile proxy" in note for note in result.notes)
    assert main(["compare", "--paper", "bulat2019", "--table", "2"]) == 0
    text = capsys.readouterr().out
    assert "1 seed" not in text and "76.6" in text


def test_a_comparison_with_no_runs_ends_with_the_command_that_fills_it(workdir, capsys):
    assert main(["compare", "--paper", "bulat2019", "--table", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "no runs yet: repro run --paper bulat2019 --table 3 --profile proxy"
