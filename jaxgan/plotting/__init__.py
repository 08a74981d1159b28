"""Matplotlib figures drawn from saved metrics and images; import a submodule to use pyplot.

Nothing here imports matplotlib at package import time, so the library stays headless.
"""
