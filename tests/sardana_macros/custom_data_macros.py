"""Test macros: custom data added before, during and after a scan, as Sardana's
example macros ``ascan_with_addcustomdata`` and ``ascanct_midtrigger`` do."""

import numpy

from sardana.macroserver.macro import Macro, Type


class ascan_custom_data(Macro):
    """An ascan with custom data of every kind: before it starts, at its second point
    and after it ended (scalars, text, arrays, a float32, a boolean, other groups)."""

    param_def = [
        ["motor", Type.Moveable, None, "Motor to move"],
        ["start_pos", Type.Float, None, "Scan start position"],
        ["final_pos", Type.Float, None, "Scan final position"],
        ["nr_interv", Type.Integer, None, "Number of scan intervals"],
        ["integ_time", Type.Float, None, "Integration time"],
    ]

    def run(self, motor, start_pos, final_pos, nr_interv, integ_time):
        scan, _ = self.prepareMacro("ascan", motor, start_pos, final_pos, nr_interv, integ_time)
        dh = scan._gScan.data_handler
        dh.addCustomData("Hello world", "greeting")
        dh.addCustomData(0.1 + 0.2, "before_float")
        points = []

        def at_point():
            points.append(len(points))
            if len(points) == 2:
                dh.addCustomData(7, "during_int")

        scan.hooks = [(at_point, ["post-acq"])]
        self.runMacro(scan)
        x = numpy.array([r.data[motor.getName()] for r in scan.data.records])
        dh.addCustomData(numpy.float32(0.1), "after_float32")
        dh.addCustomData(True, "after_bool")
        dh.addCustomData(x * 1.1 + 1e-17, "fitted", nxpath="measurement:NXcollection")
        dh.addCustomData(list(range(4)), "int_list")
        dh.addCustomData("a sample", "sample_name", nxpath="sample:NXsample")
        dh.addCustomData("two\nlines", "multiline")
