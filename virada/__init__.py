"""VIRADA, the AAU Visual Rain Dataset: rain-labelled surveillance video of two crossings.

Modules: :mod:`virada.names` (video file names), :mod:`virada.labels` (the label JSON and the
frame to minute rule), :mod:`virada.video` (PyAV decoding), :mod:`virada.gauges` (labels from
rain-gauge records), :mod:`virada.sample` (synthetic videos), :mod:`virada.prepare` and
:mod:`virada.plugin` (the ``virada`` dataset plugin).
"""
