"""Where every figure comes from: matplotlib imported whatever backend the caller's environment names,
and figures on the Agg canvas, so jaxgan's pictures never depend on a display or a notebook.

matplotlib validates ``MPLBACKEND`` when it is first imported: a Jupyter value
(``module://matplotlib_inline.backend_inline``) in a process without that package stops the import
with a ValueError. jaxgan draws files only, with Agg, so it imports matplotlib without that
variable, then hands the caller's backend back to matplotlib where it is one matplotlib accepts.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def matplotlib_module() -> Any:
    """``matplotlib``, imported (the first time) without reading ``MPLBACKEND``, which is put back after."""
    if "matplotlib" in sys.modules:
        return sys.modules["matplotlib"]
    backend = os.environ.pop("MPLBACKEND", None)
    try:
        import matplotlib
    finally:
        if backend is not None:
            os.environ["MPLBACKEND"] = backend
    if backend is not None:
        try:  # the caller's own figures keep the backend they asked for, where matplotlib has it
            matplotlib.rcParams["backend"] = backend
        except (ValueError, ImportError):
            pass
    return matplotlib


def new_figure(**kwargs) -> Any:
    """A ``matplotlib.figure.Figure`` drawn by the Agg canvas (never pyplot), whatever the backend."""
    matplotlib_module()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def image_module() -> Any:
    """``matplotlib.image`` (PNG reading and writing), imported as ``matplotlib_module`` does."""
    matplotlib_module()
    import matplotlib.image

    return matplotlib.image
