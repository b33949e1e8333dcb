"""spectral_xai's benchmark suite: ``python -m benchmarks [--quick] [--cases a,b] [--device cpu|cuda] [--out DIR]``.

Every figure is a ratio of two implementations timed side by side in one process (interleaved
repeats, medians).  Cases (one module each): ``sg2`` (SG² at equal n vs the floor and Captum),
``spectrum`` (Expected Frequency vs the authors' numpy recipe and plain torch), ``spectrum_nd`` (the
radial power spectrum of signals and volumes vs numpy per map), ``deletion``
(deletion/insertion batched vs a loop over the fractions), ``memory`` (peak memory of SG², ours vs
Captum vs the floor), ``overhead`` (profile of smooth_grad against the floor), ``accuracy`` (samples to
accuracy of the unbiased estimators), ``fastpath`` (autocast / channels_last / compile vs fp32 and Captum),
``audit`` (the dataset audit's throughput vs the engine alone), ``mc_error`` (Monte Carlo error: passes to EF
within 5 % for the plug-in / cross / bias-reduced rank estimators, calibration of ``stderr``, cost of the
statistics; also ``python -m benchmarks.studies.mc_error`` with knobs for larger runs), ``equal_accuracy``
(wall time per image to each image's EF within 5 % of a long-run truth: Captum's NoiseTunnel at the fixed n that
reaches it for 90 % of images plus the authors' numpy EF, vs smooth_grad with a per-image EF stop and the halves'
EF).  Each run writes ``<out>/<UTC timestamp>-<machine>.json`` and a markdown summary ``.md`` beside it.
"""
CASES = ("sg2", "spectrum", "spectrum_nd", "deletion", "memory", "overhead", "accuracy", "fastpath", "audit", "mc_error",
         "equal_accuracy")
