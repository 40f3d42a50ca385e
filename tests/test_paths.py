"""Where a writer may write: file names from Redis confined to the root folders, for the
whole life of a file (pure: a temporary folder, no servers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sardana_redis.following.paths import (
    ChangedOnDisk,
    ConfinedFile,
    OutsideRoots,
    UnsafePath,
    confine,
    expand_pattern,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "alice").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "root"


def test_confine_accepts_paths_under_a_root(root):
    other = root.parent / "other"
    assert confine(str(root / "alice" / "scans.h5"), [other, root]) == root / "alice" / "scans.h5"
    assert confine(f"{root}/new/folder/f.dat", [root]) == root / "new" / "folder" / "f.dat"
    (root / "inside").symlink_to(root / "alice")  # a link that stays inside
    assert confine(f"{root}/inside/f.dat", [root]) == root / "alice" / "f.dat"


@pytest.mark.parametrize(("path", "message"), [
    (None, "non-empty string, got NoneType"),
    ("", "non-empty string"),
    (["/a"], "non-empty string, got list"),
    ("relative/f.h5", "is not absolute"),
    ("/root/a\nb.h5", "control characters"),
    ("/root/a\x7fb.h5", "control characters"),
])
def test_confine_refuses_malformed_paths(root, path, message):
    with pytest.raises(UnsafePath, match=message):
        confine(path, [root])


def test_confine_refuses_escapes(root):
    with pytest.raises(UnsafePath, match="'..' in file path"):
        confine(f"{root}/alice/../../elsewhere/f.h5", [root])
    with pytest.raises(OutsideRoots, match="outside the writer's root folders"):
        confine(str(root.parent / "elsewhere" / "f.h5"), [root])
    with pytest.raises(OutsideRoots):
        confine(str(root) + "2/f.h5", [root])  # a sibling sharing the prefix
    (root / "out").symlink_to(root.parent / "elsewhere")
    with pytest.raises(OutsideRoots):
        confine(f"{root}/out/f.h5", [root])


def test_a_confined_file_is_created_through_its_folders_and_stays_the_same(root):
    confined = ConfinedFile(confine(f"{root}/alice/new/scans.dat", [root]), [root])
    folder, fd = confined.open(os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"#S 1\n")
    os.close(fd)
    os.close(folder)
    assert (root / "alice" / "new" / "scans.dat").read_bytes() == b"#S 1\n"
    folder, fd = confined.open(os.O_RDONLY)  # the same file again
    confined.check(fd)
    os.close(fd)
    os.close(folder)


def test_a_folder_swapped_for_a_link_is_refused(root):
    confined = ConfinedFile(root / "alice" / "scans.dat", [root])
    folder, fd = confined.open(os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    os.close(folder)
    (root / "alice").rename(root / "moved")
    (root / "alice").symlink_to(root.parent / "elsewhere")
    with pytest.raises(ChangedOnDisk, match="changed on disk since the scan started"):
        confined.open(os.O_WRONLY | os.O_CREAT)
    assert not (root.parent / "elsewhere" / "scans.dat").exists()


def test_a_file_swapped_for_a_link_or_another_file_is_refused(root):
    target = root / "alice" / "scans.h5"
    confined = ConfinedFile(target, [root])
    folder, fd = confined.open(os.O_WRONLY | os.O_CREAT)
    os.close(folder)
    target.unlink()
    target.symlink_to(root.parent / "elsewhere" / "x.h5")
    with pytest.raises(ChangedOnDisk):
        confined.check(fd)
    with pytest.raises(ChangedOnDisk):
        confined.open(os.O_WRONLY | os.O_CREAT)
    target.unlink()
    target.write_bytes(b"")  # another inode (fd keeps the first one from being reused)
    with pytest.raises(ChangedOnDisk):
        confined.open(os.O_RDONLY)
    os.close(fd)


def test_a_copy_made_by_the_writer_itself_is_remembered(root):
    target = root / "alice" / "scans.h5"
    confined = ConfinedFile(target, [root])
    folder, fd = confined.open(os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    os.close(folder)
    (root / "alice" / "copy.h5").write_bytes(b"recovered")
    os.replace(root / "alice" / "copy.h5", target)
    confined.replaced()
    folder, fd = confined.open(os.O_RDONLY)
    assert os.read(fd, 16) == b"recovered"
    os.close(fd)
    os.close(folder)


def test_a_confined_file_must_be_under_a_root(root):
    with pytest.raises(OutsideRoots):
        ConfinedFile(root.parent / "elsewhere" / "f.h5", [root])


def test_expand_pattern():
    fields = {"session": "door/1", "proposal": "..", "number": 7, "beamline": "", "name": "a\tb"}
    assert expand_pattern("/data/{session}/{proposal}/{beamline}/{name}_{number}.dat", fields) == \
        "/data/door_1/_/unknown/a_b_7.dat"
    with pytest.raises(ValueError, match="unknown field.s. user"):
        expand_pattern("/data/{user}.dat", fields)
