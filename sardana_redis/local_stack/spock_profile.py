"""A spock profile for a given Door, written without spock's questions.

``spock --profile=NAME`` asks for a Door when the profile does not exist, and spock's own
profile writer only finds MacroServers registered as ``MacroServer/*`` servers (the local
stack runs them in one ``Sardana`` server). This writes the same configuration file as
spock does, with the Door and its MacroServer given.
"""

from __future__ import annotations

from pathlib import Path

_CONFIG = '''"""Settings for Spock session (written by sardana-redis for {door_name})"""

#
# Please do not delete the next lines has they are used to check the version
# number for possible upgrades
# spock_creation_version = {version}
# door_name = {door_name}
#

import itango

import sardana.spock.genutils
from sardana.spock.config import Spock

config = get_config()
config.Spock.macro_server_name = '{macroserver_name}'
config.Spock.door_name = '{door_name}'

sardana.spock.load_config(config)
'''


def write_spock_profile(ipython_dir: Path, profile: str, door_name: str,
                        macroserver_name: str) -> Path:
    """Write ``ipython_dir/profile_<profile>/ipython_config.py``; the profile folder.

    Start spock on it with ``IPYTHONDIR=<ipython_dir> spock --profile=<profile>``.
    """
    from sardana import release

    folder = Path(ipython_dir) / f"profile_{profile}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ipython_config.py").write_text(_CONFIG.format(
        version=release.version, door_name=door_name, macroserver_name=macroserver_name))
    return folder
