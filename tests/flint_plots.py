"""Run Flint's own scan_info parser on scan_info documents; print what it builds.

Run by the Python of the Flint side environment (bliss 2.1.2, see tests/flint_env.py),
not by the project's: it imports nothing from this project.

    FLINT_PYTHON tests/flint_plots.py < scans.json

stdin: a JSON object ``{name: scan_info}``. stdout: a JSON object ``{name: result}``
where result is ``{"channels": {name: dim}, "plots": [plot, ...]}`` with each plot
``{"class": "CurvePlot", "device": ..., "items": [{"class": ..., "x": ..., "y": ...,
"value": ..., "image": ...}]}`` (channel names; ``"<index>"`` for Flint's index axis),
or ``{"error": traceback}`` when Flint's parser raises: then Flint plots nothing.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback

from bliss.flint.model import plot_model
from bliss.flint.scan_info_parser.plots import create_plot_model
from bliss.flint.scan_info_parser.scans import create_scan_model

ITEM_CHANNELS = {"x": "xChannel", "y": "yChannel", "value": "valueChannel",
                 "image": "imageChannel", "mca": "mcaChannel"}


def _channel_name(ref) -> str | None:
    if ref is None:
        return None
    if isinstance(ref, plot_model.XIndexChannelRef):
        return "<index>"
    return ref.name()


def _item(item) -> dict:
    described = {"class": type(item).__name__}
    for key, getter in ITEM_CHANNELS.items():
        if hasattr(item, getter):
            described[key] = _channel_name(getattr(item, getter)())
    return described


def _plot(plot) -> dict:
    device = plot.deviceName() if hasattr(plot, "deviceName") else None
    return {"class": type(plot).__name__, "device": device,
            "items": [_item(item) for item in plot.items()]}


def parse(scan_info: dict) -> dict:
    try:
        scan = create_scan_model(scan_info)
        plots = create_plot_model(scan_info, scan)
    except Exception:  # noqa: BLE001 - what Flint would hit
        return {"error": traceback.format_exc()}
    channels = {c.name(): c.metadata().dim for c in scan.channels()}
    return {"channels": channels, "plots": [_plot(p) for p in plots]}


def main() -> None:
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    documents = json.load(sys.stdin)
    json.dump({name: parse(info) for name, info in documents.items()}, sys.stdout)


if __name__ == "__main__":
    main()
