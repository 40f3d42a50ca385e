"""The memory tracker's settings: one declaration for the command line and Tango (pure)."""

from __future__ import annotations

import argparse

import pytest
from tango.server import device_property

from sardana_redis.memory_tracker.settings import (
    SettingError, TrackerSettings, add_arguments, from_arguments, from_properties, option_of,
    specs, tango_properties)
from sardana_redis.memory_tracker.tango_server import RedisMemoryTracker


def parse(*argv: str) -> TrackerSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_arguments(parser.parse_args(argv))


def test_defaults_are_the_same_everywhere():
    assert parse() == TrackerSettings()
    properties = {name: prop.default_value for name, prop in tango_properties(device_property).items()}
    defaults = {name: ([] if name == "writers" else "" if name == "max_memory" else value)
                for name, (_, value, _) in specs().items()}
    assert properties == defaults
    assert all(isinstance(vars(RedisMemoryTracker).get(name), device_property) for name in specs())


def test_values_and_errors_name_the_setting_each_front_end_its_way():
    settings = parse("--writer", "a", "--writer", "b", "--max-memory", "1gb", "--monitoring-period", "0.5")
    assert settings.writers == ("a", "b") and settings.max_memory == 1024**3
    assert settings.monitoring_period == 0.5 and option_of("writers") == "--writer"
    with pytest.raises(SettingError) as error:
        parse("--cleaning-threshold", "150")
    assert error.value.for_command_line() == "--cleaning-threshold must be between 1 and 100"
    assert error.value.for_tango() == "the cleaning_threshold property must be between 1 and 100"
    values = {name: prop.default_value for name, prop in tango_properties(device_property).items()}
    assert from_properties(values) == TrackerSettings()
    with pytest.raises(SettingError, match="max_memory is wrong"):
        from_properties({**values, "max_memory": "lots"})
    with pytest.raises(SettingError, match="publisher_timeout must be more than 0"):
        from_properties({**values, "publisher_timeout": 0.0})
