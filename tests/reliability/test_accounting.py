"""The reliability accounting itself: lost and duplicated points are told apart."""

import h5py
import numpy as np

from tests.reliability.accounting import points_in_files, tally


def test_spec_blocks_lost_and_duplicated_points(tmp_path):
    path = tmp_path / "s.dat"
    path.write_text("#F s.dat\n\n#S 1 ascan\n#L Pt_No  mot01\n0 0.0\n1 0.1\n2 0.2\n\n"
                    "#S 2 ascan\n#L Pt_No  mot01\n0 0.0\n0 0.0\n3 0.3\n\n#S 2 ascan\n#L Pt_No\n1 1\n")
    refs = {("spec", str(path), 1): 3, ("spec", str(path), 2): 3, ("spec", str(path), 3): 2}
    result = tally("c", refs)
    assert points_in_files(refs)[("spec", str(path), 2)] == [0, 0, 3, 1]
    assert (result.scans_in, result.points_in) == (3, 8)
    assert (result.scans_out, result.points_out) == (1, 5)
    assert result.lost == 1 + 2  # point 2 of scan 2, scan 3 entirely
    assert result.duplicated == 2  # a second point 0, and point 3 that was never published


def test_nexus_entries(tmp_path):
    path = tmp_path / "n.h5"
    with h5py.File(path, "w") as f:
        f["entry4/measurement/Pt_No"] = np.arange(5)
        f["entry5/measurement/Pt_No"] = np.array([0, 1, 1])
    result = tally("n", {("nexus", str(path), 4): 5, ("nexus", str(path), 5): 2})
    assert (result.points_out, result.lost, result.duplicated, result.scans_out) == (7, 0, 1, 2)
    assert result.clean is False
