"""A macro that never ends, not even when stopped or aborted: what Sardana does when a
motion's MOVING event never comes (``PoolElement.start`` waits for it without a timeout).
For the tests of the test stack's own recovery (``tests/fixtures_sardana.py``)."""

import threading

from sardana.macroserver.macro import macro


@macro()
def stuck_forever(self):
    """Blocks in C, where neither StopMacro nor AbortMacro reaches it."""
    threading.Event().wait()
