"""Demo counters with a peak: a Gaussian of a motor's position.

Loaded by the demo's Pool through its ``PoolPath``
(:data:`sardana_redis.paths.DEMO_CONTROLLER_PATH`); not for a beamline. It is Sardana's dummy
counter/timer (timing, synchronisation, continuous scans) whose counters read, instead of a
constant, ``Background + Height / (axis - 1) * exp(-(x - Center)**2 / (2 * Width**2))`` where
``x`` is the position of ``Motor`` at the end of each acquisition. Axis 1 is the timer.
"""

from __future__ import annotations

import math

from sardana.pool import AcqSynch
from sardana.pool.controller import DefaultValue, Description, Type
from sardana.pool.poolcontrollers.DummyCounterTimerController import DummyCounterTimerController

#: The timer channel: it reads the integration time, as the dummy's timer.
TIMER_AXIS = 1


def gaussian(x: float, center: float, width: float, height: float, background: float) -> float:
    """``background + height * exp(-(x - center)**2 / (2 * width**2))``."""
    return background + height * math.exp(-((x - center) ** 2) / (2 * width**2))


class GaussianCounterTimerController(DummyCounterTimerController):
    """Dummy counter/timer whose counters (axes 2 and more) peak at the ``Motor``'s
    ``Center``: axis N reads a Gaussian of height ``Height / (N - 1)``."""

    gender = "Simulation"
    model = "Gaussian"
    organization = "sardana-redis demo"

    ctrl_properties = {
        "Motor": {Type: str, DefaultValue: "mot01",
                  Description: "name of the motor (same Pool) whose position the counters follow"},
        "Center": {Type: float, DefaultValue: 2.5, Description: "position of the peak"},
        "Width": {Type: float, DefaultValue: 1.0, Description: "standard deviation of the peak"},
        "Height": {Type: float, DefaultValue: 1000.0, Description: "height of axis 2's peak"},
        "Background": {Type: float, DefaultValue: 10.0, Description: "value far from the peak"},
    }

    def peak(self, axis: int) -> float:
        """What counter ``axis`` reads now."""
        pool = self._getPoolController().pool
        motor = pool.get_element_by_name(self.Motor)
        position = motor.get_position(cache=True, propagate=0).value
        return gaussian(position, self.Center, self.Width, self.Height / (axis - TIMER_AXIS),
                        self.Background)

    def _updateChannelValue(self, axis: int, elapsed_time: float) -> None:
        """The dummy's timing and buffers, with the Gaussian as the counters' values."""
        channel = self.channels[axis - 1]
        known = len(channel.buffer_values)
        super()._updateChannelValue(axis, elapsed_time)
        if axis == TIMER_AXIS or self.integ_time is None:
            return
        value = self.peak(axis)
        if self._synchronization == AcqSynch.SoftwareTrigger:
            channel.value = value
        else:
            channel.buffer_values[known:] = [value] * (len(channel.buffer_values) - known)
