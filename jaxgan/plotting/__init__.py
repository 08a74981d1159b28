"""Matplotlib figures drawn from saved metrics and images, as files on the Agg canvas, never pyplot.

Nothing here imports matplotlib at package import time, so the library stays headless; every
figure comes from ``canvas.new_figure``, so no backend the caller's environment names matters.
"""
