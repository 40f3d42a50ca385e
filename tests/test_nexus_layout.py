"""NeXus h5map built from hand-made scan descriptions (no Redis, no Sardana)."""

import json

import pytest
from blissdata import ScanState
from blissdata.h5api.h5_scan_map import H5ScanMap
from blissdata.h5map import Dataset, Group, Inline, SoftLink, Stream

from sardana_redis.publishing.h5maps import build_h5map, build_h5maps, end_h5_items
from sardana_redis.publishing.publisher import nexus_layouts
from sardana_redis.scan_model import EndReason, RequestedFile, ScanEnd

from tests.golden_files import assert_golden_json
from tests.scan_descriptions import (
    ALL_DESCS,
    NEXUS_FILE,
    ascan_desc,
    column,
    describe,
    detectors_desc,
    mesh_desc,
    odd_desc,
    point_nb,
    timescan_desc,
)

END = ScanEnd("2024-05-02T10:01:00+02:00", EndReason.SUCCESS, "Normal")


def walk(group: Group, path: str = "") -> dict:
    """{absolute path: item} of every item below ``group``."""
    items = {}
    for name, item in group.children.items():
        items[f"{path}/{name}"] = item
        if isinstance(item, Group):
            items.update(walk(item, f"{path}/{name}"))
    return items


def attr(item, name):
    """An attribute's plain value."""
    return item.attributes[name].model_dump().tolist()


def value(dataset: Dataset):
    return dataset.value.model_dump().tolist()


@pytest.mark.parametrize("end", [None, END])
@pytest.mark.parametrize("make", ALL_DESCS)
def test_h5maps_are_json_and_round_trip(make, end):
    desc = make()
    maps = build_h5maps(desc, end)
    assert list(maps) == [NEXUS_FILE]
    reloaded = Group.model_validate(json.loads(json.dumps(maps[NEXUS_FILE], allow_nan=False)))
    assert reloaded == build_h5map(desc, end)


@pytest.mark.parametrize("make", [ascan_desc, mesh_desc, detectors_desc])
def test_h5maps_as_golden_json(make):
    """The h5maps of a step scan, a mesh and a scan with 1D and 2D channels, once ended."""
    name = make.__name__.removesuffix("_desc")
    assert_golden_json(f"h5map_{name}.json", build_h5maps(make(), END))


@pytest.mark.parametrize("make", ALL_DESCS)
def test_links_and_nxdata_point_at_existing_items(make):
    desc = make()
    items = walk(build_h5map(desc))
    entry = f"/{desc.entry_name}"
    for path, item in items.items():
        if isinstance(item, SoftLink):
            assert not isinstance(items[item.target_path], SoftLink), path
    nxdata = {p: g for p, g in items.items() if isinstance(g, Group) and attr(g, "NX_class") == "NXdata"}
    by_dataset = {c.dataset: c for c in desc.columns}
    for group in nxdata.values():
        axes = attr(group, "axes")
        signals = [attr(group, "signal")]
        if "auxiliary_signals" in group.attributes:
            signals += attr(group, "auxiliary_signals")
        for name in signals + [a for a in axes if a != "."]:
            assert isinstance(group.children[name], SoftLink)
        for name in signals:
            col = by_dataset[name]
            ndim = len(col.shape) if col.value_ref else col.ndim  # references: images
            assert len(axes) == (2 if desc.mesh_shape and ndim == 0 else 1 + ndim)
    if nxdata:
        assert f"{entry}/{attr(items[entry], 'default')}" in nxdata


def test_ascan_layout():
    desc = ascan_desc()
    root = build_h5map(desc)
    assert attr(root, "NX_class") == "NXroot" and list(root.children) == ["entry12"]
    items = walk(root)
    entry = items["/entry12"]
    assert attr(entry, "NX_class") == "NXentry" and attr(entry, "default") == "plot_1"
    assert value(items["/entry12/definition"]) == "NXscan"
    assert value(items["/entry12/title"]) == desc.title
    assert value(items["/entry12/start_time"]) == desc.start_time  # no scanstarttime: the macro's
    assert value(items["/entry12/macro_start_time"]) == desc.start_time
    assert value(items["/entry12/entry_identifier"]) == "12"
    assert value(items["/entry12/user/name"]) == "alice"
    assert attr(items["/entry12/program_name"], "version")
    assert "end_time" not in entry.children

    meas = "/entry12/measurement"
    assert attr(items[meas], "NX_class") == "NXcollection"
    for col in desc.columns:
        dataset = items[f"{meas}/{col.dataset}"]
        assert dataset.value == Stream(stream=col.stream)
    assert attr(items[f"{meas}/mot01"], "units") == "mm"
    assert items[f"{meas}/Pt_No"].value == Stream(stream="#Pt No")

    snap = f"{meas}/pre_scan_snapshot"
    assert attr(items[snap], "NX_class") == "NXcollection"
    assert items[f"{snap}/mot02"].value == Inline(dtype="float64", value=1.5)
    assert attr(items[f"{snap}/mot02"], "units") == "mm"
    assert items[f"{snap}/shutter"].value == Inline(dtype="int8", value=True)
    assert value(items[f"{snap}/sample"]) == "Si(111)"
    assert items[f"{snap}/mot03"].value == Inline(dtype="float64", value="nan")
    assert f"{meas}/mot02" not in items  # Sardana links snapshot items only into instruments

    assert attr(items["/entry12/instrument"], "NX_class") == "NXinstrument"
    assert attr(items["/entry12/instrument/mot01"], "NX_class") == "NXpositioner"
    assert items["/entry12/instrument/mot01/mot01"] == SoftLink(target_path=f"{meas}/mot01")
    assert attr(items["/entry12/instrument/counters"], "NX_class") == "NXdetector"
    assert sorted(items["/entry12/instrument/counters"].children) == ["ct01", "ct02", "ct03", "ct04"]

    plot = items["/entry12/plot_1"]
    assert attr(plot, "signal") == "ct01"
    assert attr(plot, "auxiliary_signals") == ["ct02", "ct03", "ct04"]
    assert attr(plot, "axes") == ["mot01"]
    assert plot.children["mot01"] == SoftLink(target_path=f"{meas}/mot01")
    assert "/entry12/plot_2" not in items


def test_mesh_nxdata_is_a_scatter():
    items = walk(build_h5map(mesh_desc()))
    plot = items["/entry12/plot_1"]
    assert attr(plot, "axes") == ["mot01", "mot02"] and attr(plot, "signal") == "ct01"
    assert {"mot01", "mot02", "ct01", "ct02"} <= set(plot.children)


def test_timescan_nxdata_uses_time():
    items = walk(build_h5map(timescan_desc()))
    assert attr(items["/entry12/plot_1"], "axes") == ["dt"]
    assert attr(items["/entry12/plot_1"], "signal") == "ct01"
    assert "/entry12/instrument" not in items


def test_detectors_layout():
    items = walk(build_h5map(detectors_desc()))
    plots = {attr(items[f"/entry12/plot_{i}"], "signal"): attr(items[f"/entry12/plot_{i}"], "axes")
             for i in (1, 2, 3)}
    assert plots == {"ct01": ["mot01"], "oned01": ["mot01", "."], "twod01": ["mot01", ".", "."]}
    assert attr(items["/entry12"], "default") == "plot_1"
    assert attr(build_h5map(detectors_desc()), "default") == "entry12"
    ref = items["/entry12/measurement/twod02"]
    assert ref.value == Stream(stream="twod02") and attr(ref, "sardana_value_ref") == "true"
    # the referenced images (the writer makes them a virtual dataset) are plotted too
    assert attr(items["/entry12/plot_3"], "auxiliary_signals") == ["twod02"]
    assert "/entry12/plot_4" not in items


def test_odd_labels():
    items = walk(build_h5map(odd_desc()))
    assert items["/entry12/measurement/ct_µAs_1"].value == Stream(stream="ct µA/s #1")
    assert items["/entry12/measurement/_2theta"].value == Stream(stream="2theta")
    assert attr(items["/entry12/plot_1"], "axes") == ["Ümlaut_mot"]
    assert attr(items["/entry12/plot_2"], "axes") == ["Pt_No"]


def test_end_items():
    assert end_h5_items(END) == {"end_time": Dataset(value=END.end_time),
                                 "end_reason": Dataset(value="SUCCESS")}
    entry = build_h5map(ascan_desc(), END).children["entry12"]
    assert value(entry.children["end_time"]) == END.end_time
    assert value(entry.children["end_reason"]) == "SUCCESS"


def test_only_nexus_files_get_a_map():
    files = (RequestedFile("/a/one.h5", "nexus"), RequestedFile("/a/one.dat", "spec"),
             RequestedFile("/b/two.nxs", "nexus"))
    assert list(build_h5maps(describe([point_nb(2)], files=files))) == ["/a/one.h5", "/b/two.nxs"]
    assert build_h5maps(describe([point_nb(2)], files=())) == {}


def test_duplicate_dataset_names_are_refused():
    desc = describe([point_nb(2), column("ct 01"), column("ct_01")])
    with pytest.raises(ValueError, match="ct_01"):
        build_h5map(desc)


def test_instrument_path_through_another_columns_link(caplog):
    """``/instrument/optics`` links column ``mirror``; a column placed at
    ``/instrument/optics/mirror/pitch`` cannot have its link (Sardana skips it too): the
    scan is published all the same, the column in ``measurement``."""
    desc = describe([point_nb(2), column("mirror", instrument="/instrument/optics"),
                     column("pitch", instrument="/instrument/optics/mirror/pitch")])
    items = walk(build_h5map(desc))
    assert items["/entry12/instrument/optics/mirror"] == \
        SoftLink(target_path="/entry12/measurement/mirror")
    assert "/entry12/measurement/pitch" in items
    assert not [path for path in items if path.startswith("/entry12/instrument/optics/mirror/")]
    assert "No instrument link for pitch: its path /instrument/optics/mirror runs through" \
        in caplog.text


def test_a_scan_that_cannot_be_laid_out_is_published_without_a_layout(caplog):
    """The publisher publishes it all the same (no ``h5maps``): the NeXus writer writes its
    default layout, every stream in ``measurement``."""
    desc = describe([point_nb(2), column("ct 01"), column("ct_01")])
    assert nexus_layouts(desc) == {} and nexus_layouts(desc, END) == {}
    assert "ascan #12: no NeXus layout" in caplog.text
    assert list(nexus_layouts(ascan_desc())) == [NEXUS_FILE]


def test_blissdata_reads_the_map():
    """blissdata's H5ScanMap finds items by path in scan.info["h5maps"][scan.path]."""
    desc = ascan_desc()

    class FakeScan:
        state = ScanState.CLOSED
        path = NEXUS_FILE
        number = 12
        key = "esrf:scan:fake"
        info = {"h5maps": build_h5maps(desc)}

    scan_map = H5ScanMap(FakeScan())
    assert list(scan_map) == ["entry12"]
    assert scan_map["/entry12/measurement/ct01"].value == Stream(stream="ct01")
    assert scan_map.path_partition("/entry12/plot_1/mot01/x") == (
        "/entry12/plot_1/mot01", SoftLink(target_path="/entry12/measurement/mot01"), "x")
