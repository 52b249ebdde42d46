"""The report's statistics against direct scipy computations, Holm on a worked example, the false-positive rate."""

import numpy as np
import pytest
from scipy import stats

from ablate.report.pairwise import RESAMPLES, SEED, compare, finish, holm, seeds_for_power
from ablate.report.stats import epoch_bands, iqm, mean_ci

A = np.array([0.612, 0.598, 0.641, 0.605, 0.633, 0.590])  # six seeds of one arm (accuracies)
B = np.array([0.571, 0.580, 0.602, 0.605, 0.590, 0.575])  # the same seeds of another; seed 3 is a tie
TOL = 1e-9


def bootstrap(samples, statistic, paired=False):
    result = stats.bootstrap(samples, statistic, paired=paired, method="BCa", n_resamples=RESAMPLES,
                             rng=np.random.default_rng(SEED), vectorized=True)
    return result.confidence_interval.low, result.confidence_interval.high


def test_paired_comparison_equals_scipy():
    c = compare(A, B, paired=True)
    assert c.diff == pytest.approx(np.mean(A - B), abs=TOL)
    low, high = bootstrap((A, B), lambda x, y, axis: np.mean(x - y, axis=axis), paired=True)
    assert (c.diff_ci_low, c.diff_ci_high) == (pytest.approx(low, abs=TOL), pytest.approx(high, abs=TOL))
    assert c.p_better == pytest.approx(5.5 / 6, abs=TOL)  # A wins on 5 seeds, ties on 1
    wins = lambda x, y, axis: np.mean(x > y, axis=axis) + 0.5 * np.mean(x == y, axis=axis)  # noqa: E731
    low, high = bootstrap((A, B), wins, paired=True)
    assert (c.p_better_ci_low, c.p_better_ci_high) == (pytest.approx(low, abs=TOL), pytest.approx(high, abs=TOL))
    assert c.rank_p == pytest.approx(stats.wilcoxon(A, B).pvalue, abs=TOL)
    assert c.t_p == pytest.approx(stats.ttest_rel(A, B).pvalue, abs=TOL)
    assert c.sd == pytest.approx(np.std(A - B, ddof=1), abs=TOL)
    assert (c.paired, c.n, c.ci_method, c.rank_test, c.t_test) == (True, 6, "BCa", "Wilcoxon signed-rank", "paired t")


def test_unpaired_comparison_equals_scipy():
    a, b = A[:5], B[1:]
    c = compare(a, b, paired=False)
    assert c.diff == pytest.approx(a.mean() - b.mean(), abs=TOL)
    low, high = bootstrap((a, b), lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis))
    assert (c.diff_ci_low, c.diff_ci_high) == (pytest.approx(low, abs=TOL), pytest.approx(high, abs=TOL))
    u = stats.mannwhitneyu(a, b)
    assert c.p_better == pytest.approx(u.statistic / (len(a) * len(b)), abs=TOL)
    assert c.rank_p == pytest.approx(u.pvalue, abs=TOL)
    assert c.t_p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, abs=TOL)
    assert c.sd == pytest.approx(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2), abs=TOL)
    assert (c.paired, c.n, c.rank_test, c.t_test) == (False, 5, "Mann-Whitney U", "Welch t")


def test_a_degenerate_bootstrap_falls_back_to_the_percentile_interval():
    c = compare(A + 0.1, A, paired=True)  # every difference 0.1: BCa is undefined
    assert c.ci_method == "percentile"
    assert (c.diff_ci_low, c.diff_ci_high) == (pytest.approx(0.1, abs=TOL), pytest.approx(0.1, abs=TOL))
    assert (c.p_better, c.p_better_ci_low, c.p_better_ci_high) == (1.0, 1.0, 1.0)


def test_per_arm_interval_and_interquartile_mean_equal_scipy():
    low, high = mean_ci(list(A))
    expected = stats.t.interval(0.95, len(A) - 1, loc=A.mean(), scale=stats.sem(A))
    assert (low, high) == (pytest.approx(expected[0], abs=TOL), pytest.approx(expected[1], abs=TOL))
    assert iqm(list(A)) == pytest.approx(stats.trim_mean(A, 0.25), abs=TOL)
    assert iqm(list(A[:5])) == pytest.approx(np.mean(np.sort(A[:5])[1:4]), abs=TOL)  # the middle three of five
    assert iqm(list(A[:4])) is None and mean_ci([0.5]) == (None, None) and mean_ci([0.5, 0.5]) == (0.5, 0.5)


def test_curve_bands_are_the_per_epoch_interval():
    curves = [[{"epoch": 1, "val_acc": 0.1}, {"epoch": 2, "val_acc": 0.3}],
              [{"epoch": 1, "val_acc": 0.2}, {"epoch": 2, "val_acc": 0.5}],
              [{"epoch": 1, "val_acc": 0.3}]]  # an unfinished run
    (e1, m1, lo1, hi1), (e2, m2, lo2, hi2) = epoch_bands(curves, "val_acc")
    assert (e1, e2) == (1, 2) and (m1, m2) == (pytest.approx(0.2), pytest.approx(0.4))
    assert (lo1, hi1) == pytest.approx(stats.t.interval(0.95, 2, loc=0.2, scale=stats.sem([0.1, 0.2, 0.3])), abs=TOL)
    assert (lo2, hi2) == pytest.approx(stats.t.interval(0.95, 1, loc=0.4, scale=stats.sem([0.3, 0.5])), abs=TOL)


def test_holm_on_a_worked_example():
    # Holm (1979) as worked in Wikipedia's "Holm–Bonferroni method": p = 0.01, 0.04, 0.03, 0.005 at alpha 0.05;
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06:
    # H4 and H1 are rejected, H2 and H3 are not.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=TOL)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02, None]) == [pytest.approx(0.04), None]  # an untestable comparison still counts in m
    assert holm([0.2]) == [0.2] and holm([]) == []


def test_seeds_for_power_match_published_tables():
    # G*Power, matched pairs, two-sided alpha 0.05, power 0.8: d_z = 0.5 -> 34, 0.8 -> 15, 1.0 -> 10.
    assert [seeds_for_power(d, 1.0, paired=True) for d in (0.5, 0.8, 1.0)] == [34, 15, 10]
    # Cohen (1988): two independent groups, d = 0.5 -> 64 per group, d = 0.8 -> 26.
    assert [seeds_for_power(d, 1.0, paired=False) for d in (0.5, 0.8)] == [64, 26]
    n = seeds_for_power(0.03, 0.02, paired=True, alpha=0.05 / 4)  # the smallest n with power >= 0.8, by scipy's nct
    power = [stats.nct.sf(stats.t.ppf(1 - 0.05 / 8, k - 1), k - 1, np.sqrt(k) * 1.5)
             + stats.nct.cdf(-stats.t.ppf(1 - 0.05 / 8, k - 1), k - 1, np.sqrt(k) * 1.5) for k in (n - 1, n)]
    assert power[0] < 0.8 <= power[1]
    assert seeds_for_power(0.0, 0.02, paired=True) is None and seeds_for_power(0.1, 0.0, paired=True) is None
    assert seeds_for_power(0.1, None, paired=True) is None


def test_verdicts_in_words():
    better = finish([compare(A, B, paired=True, a_name="BN+RC", b_name="RC")])[0]
    assert better.verdict == "BN+RC better (CI excludes 0)" and better.t_p_holm == better.t_p
    worse = finish([compare(B, A, paired=True, a_name="RC", b_name="BN+RC")])[0]
    assert worse.verdict == "BN+RC better (CI excludes 0)"
    assert finish([compare(A[:2], B[:2], paired=True)])[0].verdict == "too few seeds (n = 2)"
    assert finish([compare(A, A[::-1], paired=True)])[0].verdict == "no detectable difference"
    loss = finish([compare(1 - A, 1 - B, paired=True, a_name="BN+RC", b_name="RC", metric="test_loss",
                           higher_is_better=False)])[0]
    assert loss.verdict == "BN+RC better (CI excludes 0)" and loss.p_better == pytest.approx(5.5 / 6)
    assert loss.diff < 0


def test_holm_over_many_comparisons_can_withhold_a_verdict():
    c = compare(A, B, paired=True)
    family = finish([c] + [compare(A, A[::-1], paired=True)] * 19)
    assert family[0].t_p_holm == pytest.approx(min(1.0, 20 * c.t_p)) and family[0].t_p_holm > 0.05
    assert family[0].verdict == f"no detectable difference (Holm p = {family[0].t_p_holm:.2g})"
    assert family[0].seeds_needed > finish([c])[0].seeds_needed  # alpha / 20 needs more seeds than alpha


def verdicts(shift: float, trials: int, draw, paired: bool = True) -> list[str]:
    """The verdicts of ``trials`` simulated 5-seed comparisons (1,000 resamples each, to stay fast)."""
    rng = np.random.default_rng(12345)
    out = []
    for _ in range(trials):
        a, b = draw(rng) + shift, draw(rng)
        out.append(finish([compare(a, b, paired=paired, a_name="A", b_name="B", resamples=1000)])[0].verdict)
    return out


def test_false_positive_rate_of_better_over_1000_null_comparisons():
    found = verdicts(0.0, 1000, lambda rng: rng.normal(0.6, 0.02, 5))  # both arms from one distribution
    assert sum(v == "A better (CI excludes 0)" for v in found) <= 50
    assert sum(v == "B better (CI excludes 0)" for v in found) <= 50
    assert sum(v.startswith("no detectable difference") for v in found) >= 900


@pytest.mark.parametrize("draw", [
    lambda rng: rng.binomial(500, 0.6, 5) / 500,  # test accuracies on 500 images: ties happen
    lambda rng: rng.lognormal(0.0, 1.0, 5),  # skewed
], ids=["binomial", "lognormal"])
def test_false_positive_rate_holds_for_discrete_and_skewed_metrics(draw):
    found = verdicts(0.0, 300, draw)
    assert sum(v == "A better (CI excludes 0)" for v in found) <= 15
    assert sum(v == "B better (CI excludes 0)" for v in found) <= 15


def test_false_positive_rate_holds_unpaired():
    found = verdicts(0.0, 300, lambda rng: rng.normal(0.6, 0.02, 5), paired=False)
    assert sum(v == "A better (CI excludes 0)" for v in found) <= 15
    assert sum(v == "B better (CI excludes 0)" for v in found) <= 15


def test_a_real_effect_is_found():
    found = verdicts(0.06, 100, lambda rng: rng.normal(0.6, 0.02, 5))  # d_z = 0.06 / (0.02 sqrt 2) = 2.1
    assert sum(v == "A better (CI excludes 0)" for v in found) >= 70
    assert not any(v.startswith("B better") for v in found)
