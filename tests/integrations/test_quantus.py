"""spectral_xai.integrations.quantus: quantus.Metric subclasses scoring exactly as sx.* on the same maps."""
import warnings

import numpy as np
import pytest
import torch

import quantus
from quantus.helpers.enums import DataType, EvaluationCategory, ModelType, ScoreDirection
import spectral_xai as sx
from spectral_xai.integrations.quantus import ExpectedFrequency, ExplanationGap

from helpers import small_cnn


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = small_cnn().eval()
    x = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    y = model(x).argmax(1)
    return model, x.numpy(), y.numpy()


def test_class_attributes_follow_quantus():
    for cls in (ExpectedFrequency, ExplanationGap):
        assert issubclass(cls, quantus.Metric)
        assert cls.score_direction == ScoreDirection.LOWER
        assert DataType.IMAGE in cls.data_applicability
        assert ModelType.TORCH in cls.model_applicability
    assert ExpectedFrequency.evaluation_category == EvaluationCategory.COMPLEXITY
    assert ExpectedFrequency.name == "Expected Frequency"


def test_per_instance_scores_equal_sx(setup):
    model, x, y = setup
    a = sx.quantus_explain_func(model, x, y, method="vg")                       # (B, 1, H, W)
    maps = torch.from_numpy(a[:, 0])
    scores = ExpectedFrequency()(model=model, x_batch=x, y_batch=y, a_batch=a, batch_size=4)
    np.testing.assert_array_equal(np.asarray(scores), sx.expected_frequency(maps).double().numpy())
    raw = ExpectedFrequency(rank_normalize=False, exclude_dc=True)(model=None, x_batch=x, y_batch=y, a_batch=a[:, 0])
    np.testing.assert_array_equal(raw, sx.expected_frequency(maps, rank_normalize=False, exclude_dc=True).numpy())
    per_channel = sx.attribute.VanillaGradient(model).attribute(torch.from_numpy(x), target=torch.from_numpy(y))
    summed = ExpectedFrequency()(model=model, x_batch=x, y_batch=y, a_batch=per_channel.numpy())
    channel_sum = torch.from_numpy(per_channel.numpy().sum(axis=1))                         # channels summed
    np.testing.assert_array_equal(summed, sx.expected_frequency(channel_sum).double().numpy())
    absolute = ExpectedFrequency(abs=True, normalise=True)(model=model, x_batch=x, y_batch=y, a_batch=a)
    np.testing.assert_allclose(absolute, sx.expected_frequency(maps.abs()).numpy(), rtol=1e-6)   # Quantus's abs


def test_explanation_gap_with_a_reference_func_or_given_maps(setup):
    model, x, y = setup
    vg = sx.quantus_explain_func(model, x, y, method="vg")
    sg = sx.quantus_explain_func(model, x, y, method="sg", n_samples=4)
    want = sx.explanation_gap(torch.from_numpy(vg[:, 0]), torch.from_numpy(sg[:, 0])).double().numpy()
    metric = ExplanationGap(reference_explain_func=sx.quantus_explain_func,
                            reference_explain_func_kwargs={"method": "vg"})
    np.testing.assert_array_equal(metric(model=model, x_batch=x, y_batch=y, a_batch=sg), want)   # one batch, as vg
    given = ExplanationGap()(model=model, x_batch=x, y_batch=y, a_batch=sg, custom_batch=vg)
    np.testing.assert_array_equal(given, want)
    with pytest.raises(ValueError, match="'reference_explain_func'"):
        ExplanationGap()(model=model, x_batch=x, y_batch=y, a_batch=sg)


def test_inside_quantus_evaluate_next_to_sparseness_and_complexity(setup):
    model, x, y = setup
    metrics = {"EF": ExpectedFrequency(), "EF (no DC)": ExpectedFrequency(exclude_dc=True),
               "Gap": ExplanationGap(reference_explain_func=sx.quantus_explain_func,
                                     reference_explain_func_kwargs={"method": "vg"}),
               "Sparseness": quantus.Sparseness(disable_warnings=True),
               "Complexity": quantus.Complexity(disable_warnings=True)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = quantus.evaluate(metrics=metrics, xai_methods={"vg": sx.quantus_explain_func,
                                                                 "sg": sx.quantus_explain_func},
                                   model=model, x_batch=x, y_batch=y, explain_func_kwargs={})
    for method in ("vg", "sg"):
        a = sx.quantus_explain_func(model, x, y, method=method)           # sg: seeded, the same maps
        maps = torch.from_numpy(a[:, 0])
        np.testing.assert_array_equal(results[method]["EF"], sx.expected_frequency(maps).double().numpy())
        np.testing.assert_array_equal(results[method]["EF (no DC)"],
                                      sx.expected_frequency(maps, exclude_dc=True).double().numpy())
        assert len(results[method]["Sparseness"]) == len(results[method]["Complexity"]) == 6
    np.testing.assert_array_equal(results["vg"]["Gap"], np.zeros(6))            # VG against itself
    assert np.all(np.asarray(results["sg"]["Gap"]) > 0)


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match="'reduction'"):
        ExpectedFrequency(reduction="sum")
    with pytest.raises(TypeError, match="'reference_explain_func'"):
        ExplanationGap(reference_explain_func="vg")
