"""Expected Frequency and the explanation gap as ``quantus.Metric`` subclasses (docs/integrations.md §2).

Quantus's conventions: class attributes ``name``, ``data_applicability``, ``model_applicability``,
``score_direction`` and ``evaluation_category``; Quantus prepares the attributions (channel-first,
``normalise`` / ``abs`` if asked) and calls ``evaluate_batch`` on numpy arrays, which returns one score
per instance.  Channels: like Quantus's complexity metrics, which score all of an attribution's values
together, the maps are (B, C, H, W) after Quantus's preprocessing (C = 1 for channel-reduced maps) and are
summed over C (signed) into the (B, H, W) map whose spectrum is measured, the library's own channel
reduction (docs/methods.md §7).  Scores are ``sx.expected_frequency`` / ``sx.explanation_gap`` of those
maps, exactly.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from . import check_ef_options, require
from .. import _validation as V
from ..spectrum import expected_frequency, explanation_gap

_quantus = require("quantus", "quantus")
from quantus.helpers import utils as _qutils, warn as _qwarn  # noqa: E402
from quantus.helpers.enums import DataType, EvaluationCategory, ModelType, ScoreDirection  # noqa: E402
from quantus.helpers.model.model_interface import ModelInterface  # noqa: E402

__all__ = ["ExpectedFrequency", "ExplanationGap"]

_CITATION = ("'On the Complexity-Faithfulness Trade-off of Gradient-Based Explanations', "
             "ICCV 2025")


def _maps(a: np.ndarray) -> torch.Tensor:
    """Quantus's channel-first attributions (B, C, *spatial) -> (B, *spatial) maps, summed over C."""
    a = np.asarray(a)
    return torch.from_numpy(np.ascontiguousarray(a.sum(axis=1) if a.shape[1] > 1 else a[:, 0]))


class _SpectralQuantusMetric(_quantus.Metric):
    """Shared: the EF options, Quantus's preprocessing defaults and the call with defaults."""

    data_applicability = {DataType.IMAGE}
    model_applicability = {ModelType.TORCH, ModelType.TF}
    score_direction = ScoreDirection.LOWER

    def __init__(self, *, rank_normalize: bool = True, reduction: str = "mean", exclude_dc: bool = False,
                 abs: bool = False, normalise: bool = False, normalise_func: Optional[Callable] = None,
                 normalise_func_kwargs: Optional[Dict[str, Any]] = None, return_aggregate: bool = False,
                 aggregate_func: Optional[Callable] = None, default_plot_func: Optional[Callable] = None,
                 disable_warnings: bool = False, display_progressbar: bool = False, **ef_options):
        self.ef_options = {"rank_normalize": rank_normalize, "reduction": reduction, "exclude_dc": exclude_dc,
                           **ef_options}
        check_ef_options(self.ef_options)
        super().__init__(abs=abs, normalise=normalise, normalise_func=normalise_func,
                         normalise_func_kwargs=normalise_func_kwargs, return_aggregate=return_aggregate,
                         aggregate_func=aggregate_func, default_plot_func=default_plot_func,
                         disable_warnings=disable_warnings, display_progressbar=display_progressbar)
        if not self.disable_warnings:
            _qwarn.warn_parameterisation(
                metric_name=self.__class__.__name__,
                sensitive_params="rank normalisation 'rank_normalize', the DC ring 'exclude_dc', and 'abs' / "
                                 "'normalise' (EF is invariant to a positive scale, not to 'abs')",
                citation=_CITATION)

    def __call__(self, model, x_batch: np.ndarray, y_batch: np.ndarray, a_batch: Optional[np.ndarray] = None,
                 s_batch: Optional[np.ndarray] = None, channel_first: Optional[bool] = None,
                 explain_func: Optional[Callable] = None, explain_func_kwargs: Optional[Dict] = None,
                 model_predict_kwargs: Optional[Dict] = None, softmax: Optional[bool] = False,
                 device: Optional[str] = None, batch_size: int = 64, custom_batch: Any = None,
                 **kwargs) -> List[float]:
        """Quantus's call: scores of a_batch (or of explain_func's maps of x_batch), one per instance."""
        return super().__call__(model=model, x_batch=x_batch, y_batch=y_batch, a_batch=a_batch, s_batch=s_batch,
                                custom_batch=custom_batch, channel_first=channel_first, explain_func=explain_func,
                                explain_func_kwargs=explain_func_kwargs, softmax=softmax, device=device,
                                model_predict_kwargs=model_predict_kwargs, batch_size=batch_size, **kwargs)

    def _prepare(self, a: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Quantus's preprocessing of attributions (channel axis, normalise, abs), for the reference maps."""
        a = _qutils.expand_attribution_channel(np.asarray(a), x)
        if self.normalise:
            a = self.normalise_func(a)
        return np.abs(a) if self.abs else a


class ExpectedFrequency(_SpectralQuantusMetric):
    """Expected Frequency (ICCV25; docs/methods.md §7) as a Quantus complexity metric: lower is smoother.

    Keywords: those of :func:`spectral_xai.expected_frequency` (``rank_normalize=True``, ``reduction``,
    ``exclude_dc``, any other passed through) and Quantus's (``abs``, ``normalise``, ``return_aggregate``...).
    ``abs`` and ``normalise`` default to False (Quantus's complexity metrics default to True): EF measures
    the signed map, as the library and ICCV25 do; ``normalise`` (a positive scale) leaves EF unchanged.
    Call: ``ExpectedFrequency()(model=model, x_batch=x, y_batch=y, a_batch=a)`` -> list of per-instance EF.
    """

    name = "Expected Frequency"
    evaluation_category = EvaluationCategory.COMPLEXITY

    def evaluate_batch(self, a_batch: np.ndarray, **kwargs) -> np.ndarray:
        """a_batch (B, C, H, W) numpy -> (B,) EF of the channel-summed maps, float64."""
        return expected_frequency(_maps(a_batch), **self.ef_options).double().numpy()


class ExplanationGap(_SpectralQuantusMetric):
    """The explanation gap ΔEF = |EF(map) − EF(reference map)| (ICCV25 §4.4; docs/methods.md §7) as a Quantus
    metric: lower means closer to the reference (VanillaGrad, the model's own gradient).

    The reference maps come from ``reference_explain_func(model=, inputs=, targets=, **kwargs)`` (e.g.
    ``sx.quantus_explain_func`` with ``{"method": "vg"}``), evaluated per batch on the same inputs, or are
    given to the call as ``custom_batch`` (a numpy array like a_batch); they get the same preprocessing
    as a_batch.  ICCV25 reads the gap as a departure from the model's behaviour, so the category is
    FAITHFULNESS.  Other keywords as :class:`ExpectedFrequency`.
    """

    name = "Explanation Gap"
    evaluation_category = EvaluationCategory.FAITHFULNESS

    def __init__(self, *, reference_explain_func: Optional[Callable] = None,
                 reference_explain_func_kwargs: Optional[Dict[str, Any]] = None, **kwargs):
        if reference_explain_func is not None and not callable(reference_explain_func):
            V.fail("reference_explain_func", f"expected a callable, got {type(reference_explain_func).__name__}",
                   TypeError)
        self.reference_explain_func = reference_explain_func
        self.reference_explain_func_kwargs = dict(reference_explain_func_kwargs or {})
        super().__init__(**kwargs)

    def custom_preprocess(self, *, x_batch: np.ndarray, custom_batch: Any = None, **kwargs):
        """Given reference maps (custom_batch): checked and preprocessed once, batched as reference_batch."""
        if custom_batch is None:
            if self.reference_explain_func is None:
                V.fail("reference_explain_func", "the explanation gap needs reference maps: pass "
                                                 "reference_explain_func= to the metric or custom_batch= to the call")
            return None
        return {"reference_batch": self._prepare(custom_batch, x_batch), "custom_batch": None}

    def custom_batch_preprocess(self, *, model, x_batch: np.ndarray, y_batch: np.ndarray, a_batch: np.ndarray,
                                **kwargs):
        """Without given reference maps: explain this batch with reference_explain_func."""
        if kwargs.get("reference_batch") is not None:
            return None
        if isinstance(model, ModelInterface):
            model = model.get_model()
        ref = self.reference_explain_func(model=model, inputs=x_batch, targets=y_batch,
                                          **self.reference_explain_func_kwargs)
        return {"reference_batch": self._prepare(ref, x_batch)}

    def evaluate_batch(self, a_batch: np.ndarray, reference_batch: np.ndarray, **kwargs) -> np.ndarray:
        """a_batch, reference_batch (B, C, H, W) numpy -> (B,) ΔEF of the channel-summed maps, float64."""
        return explanation_gap(_maps(reference_batch), _maps(a_batch), **self.ef_options).double().numpy()
