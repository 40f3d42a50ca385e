"""The folders a MacroServer (and the demo's Pool) load this package's code from.

``sardana-redis paths`` prints the first two, for the MacroServer's ``RecorderPath`` and
``MacroPath`` properties.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: Recorders of this project (``RecorderPath`` of the MacroServer).
RECORDER_PATH = PACKAGE_DIR / "recorder"
#: Macros of this project (``MacroPath`` of the MacroServer).
MACRO_PATH = PACKAGE_DIR / "macros"
#: The demo's controllers (``PoolPath`` of the demo's Pool; not for a beamline).
DEMO_CONTROLLER_PATH = PACKAGE_DIR / "local_stack" / "controllers"

#: Property name -> folder, as ``sardana-redis paths`` prints them.
MACROSERVER_PATHS = {"RecorderPath": RECORDER_PATH, "MacroPath": MACRO_PATH}
