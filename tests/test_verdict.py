"""The gradient-flow verdict on constructed profiles, and on the study's models at initialisation."""

import math

import pytest

from ablate.gradflow.verdict import (
    EXPLODING_MEAN_ABS,
    EXPLODING_RATIO,
    NONFINITE_FRACTION,
    VANISHING_RATIO,
    judge,
    verdict_label,
)


def test_healthy_profile():
    result = judge([2e-5, 1e-5, 3e-5, 1e-4])
    assert result.verdict == "healthy"
    assert result.ratio == pytest.approx(0.2)
    assert (result.first, result.last, result.min, result.max) == (2e-5, 1e-4, 1e-5, 1e-4)


def test_vanishing_profile_like_plain_vgg38():
    profile = [5e-18] * 12 + [5e-15] * 12 + [5e-10] * 12 + [5e-5, 1e-4]
    result = judge(profile)
    assert result.verdict == "vanishing"
    assert result.ratio == pytest.approx(5e-14)
    assert "first/last" in result.reason


def test_exploding_ratio():
    assert verdict_label([1.0, 1e-2, 1e-6]) == "exploding"  # ratio 1e6


def test_exploding_magnitude_even_with_a_flat_profile():
    assert verdict_label([15.0, 12.0, 5.0]) == "exploding"


def test_all_zero_layer_is_vanishing():
    result = judge([1e-3, 0.0, 1e-3], layers=["entry", "middle", "classifier"])
    assert result.verdict == "vanishing"
    assert "middle" in result.reason


def test_all_zero_profile_is_vanishing_with_undefined_ratio():
    result = judge([0.0, 0.0])
    assert result.verdict == "vanishing"
    assert result.as_dict()["ratio"] is None


@pytest.mark.parametrize("bad", [math.inf, math.nan])
def test_non_finite_layer_is_exploding(bad):
    result = judge([1e-3, bad, 1e-3])
    assert result.verdict == "exploding"
    assert result.as_dict()["max"] == 1e-3  # extremes over the finite layers; JSON-safe


def test_many_non_finite_steps_is_exploding():
    assert verdict_label([1e-3, 1e-3], nonfinite_fraction=NONFINITE_FRACTION * 2) == "exploding"
    assert verdict_label([1e-3, 1e-3], nonfinite_fraction=NONFINITE_FRACTION / 2) == "healthy"


def test_thresholds_are_inclusive_on_the_healthy_side():
    assert verdict_label([VANISHING_RATIO, 1.0]) == "healthy"
    assert verdict_label([VANISHING_RATIO * 0.99, 1.0]) == "vanishing"
    assert verdict_label([1.0, 1 / EXPLODING_RATIO]) == "healthy"
    assert verdict_label([EXPLODING_MEAN_ABS, 1.0]) == "healthy"


def test_empty_profile_is_unknown():
    assert verdict_label([]) == "unknown"


def study_batch():
    from ablate.data.augment import DeviceLoader, channel_stats
    from ablate.data.synthetic import synthetic

    splits = synthetic(train_size=100, val_size=1, test_size=1)
    mean, std = channel_stats(splits.train.x)
    return next(iter(DeviceLoader(splits.train, 100, mean, std).batches()))


@pytest.mark.slow
@pytest.mark.parametrize("arch,norm,shortcut,expected", [
    ("vgg38", "none", "none", "vanishing"),
    ("vgg38", "bn", "identity", "healthy"),
    ("vgg38", "none", "identity", "healthy"),
    ("vgg08", "none", "none", "healthy"),
])
def test_study_models_at_initialisation(arch, norm, shortcut, expected):
    import torch

    from ablate.gradflow import gradient_stats_at_init
    from ablate.models import build_model

    x, y = study_batch()
    torch.manual_seed(0)
    stats = gradient_stats_at_init(build_model(arch, norm=norm, shortcut=shortcut, width=16), x, y)
    assert stats.summary()["verdict"] == expected
