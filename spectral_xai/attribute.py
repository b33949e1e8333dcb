"""Captum-shaped front-end: ``Method(model).attribute(inputs, target=..., **kwargs)``.

A thin layer over the functional API for code written against Captum.  As in Captum, the
attribution has the input's shape (channels are not reduced) and the target *logit* is explained
by default (:data:`~spectral_xai.methods.CAPTUM_CONVENTION`); a tuple of one tensor in gives a tuple out.  Captum's argument
names are accepted: ``baselines`` (IG), ``nt_samples`` and ``stdevs`` (SmoothGrad).
"""
from __future__ import annotations

import torch

from . import _validation as V
from .gradients import integrated_grad, smooth_grad, vanilla_grad
from .methods import CAPTUM_CONVENTION, CAPTUM_SG_STDEVS, explain, method_spec

__all__ = ["Explainer", "IntegratedGradients", "SmoothGrad", "SmoothGradSquared", "VanillaGradient"]


class _Attribution:
    def __init__(self, forward_func):
        if not callable(forward_func):
            V.fail("forward_func", f"expected a model or a callable, got {type(forward_func).__name__}", TypeError)
        self.forward_func = forward_func

    def attribute(self, inputs, target=None, **kwargs):
        """inputs: (B, C, H, W) tensor or a 1-tuple of it -> attribution of the same shape (and kind)."""
        as_tuple = isinstance(inputs, tuple)
        if as_tuple and len(inputs) != 1:
            V.fail("inputs", f"expected one input tensor, got a tuple of {len(inputs)}", TypeError)
        x = inputs[0] if as_tuple else inputs
        kwargs = {**CAPTUM_CONVENTION, **kwargs}
        attr = self._explain(x, target, **kwargs)
        return (attr,) if as_tuple else attr

    def _explain(self, x: torch.Tensor, target, **kwargs) -> torch.Tensor:
        raise NotImplementedError


class VanillaGradient(_Attribution):
    """The gradient at the input (Captum's ``Saliency(abs=False)``); ``squared=True`` for g²."""

    def _explain(self, x, target, **kwargs):
        return vanilla_grad(self.forward_func, x, target, **kwargs)


class SmoothGrad(_Attribution):
    """E[g] under additive noise; ``sigma`` (or Captum's ``stdevs``), ``n_samples`` (``nt_samples``),
    ``batch_size`` (``nt_samples_batch_size``); Captum's ``nt_type`` is accepted when it names this class's
    estimator ("smoothgrad"; "smoothgrad_sq" for :class:`SmoothGradSquared`)."""

    squared = False
    nt_type = "smoothgrad"

    def _explain(self, x, target, sigma=None, stdevs=None, nt_samples=None, nt_type=None,
                 nt_samples_batch_size=None, **kwargs):
        if nt_type is not None and nt_type != self.nt_type:
            other = {"smoothgrad": "SmoothGrad", "smoothgrad_sq": "SmoothGradSquared"}.get(nt_type)
            hint = f"use {other} for {nt_type!r}" if other else "'vargrad' is not offered"
            V.fail("nt_type", f"{type(self).__name__} computes {self.nt_type!r}, got {nt_type!r} ({hint})")
        if sigma is None:
            sigma = CAPTUM_SG_STDEVS if stdevs is None else stdevs
        if nt_samples is not None:
            kwargs["n_samples"] = nt_samples
        if nt_samples_batch_size is not None:
            kwargs["batch_size"] = nt_samples_batch_size
        return smooth_grad(self.forward_func, x, sigma, target, squared=self.squared, **kwargs)


class SmoothGradSquared(SmoothGrad):
    """E[g²] under additive noise (Captum's NoiseTunnel(Saliency) with ``smoothgrad_sq``)."""

    squared = True
    nt_type = "smoothgrad_sq"


class IntegratedGradients(_Attribution):
    """(x - b) * integral of g along the straight path (Captum's IntegratedGradients, Gauss-Legendre)."""

    def _explain(self, x, target, baselines=None, baseline=None, **kwargs):
        b = baseline if baseline is not None else baselines
        if isinstance(b, (int, float)):
            b = torch.full_like(x, float(b))
        return integrated_grad(self.forward_func, x, target, baseline=b, **kwargs)


class Explainer(_Attribution):
    """Any method of :data:`spectral_xai.METHODS` behind Captum's call shape:
    ``Explainer(model, "sl2").attribute(inputs, target=...)`` -> the (B, H, W) map (a 1-tuple for a
    1-tuple in).  Unlike the classes above, the method's own defaults apply (e.g. log_softmax)."""

    def __init__(self, forward_func, method: str = "sg2"):
        super().__init__(forward_func)
        self.method = method_spec(method).name

    def attribute(self, inputs, target=None, **kwargs):
        as_tuple = isinstance(inputs, tuple)
        if as_tuple and len(inputs) != 1:
            V.fail("inputs", f"expected one input tensor, got a tuple of {len(inputs)}", TypeError)
        attr = explain(self.method, self.forward_func, inputs[0] if as_tuple else inputs, target, **kwargs)
        return (attr,) if as_tuple else attr
