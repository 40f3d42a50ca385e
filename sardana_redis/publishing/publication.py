"""What is published for one scan, in blissdata's terms: the model the spool keeps.

A :class:`Publication` is everything needed to create the blissdata scan again
from nothing (its identity, its ``scan_info``, its streams); a :class:`Batch` is
one XADD of one stream, already encoded by blissdata's own encoders, with the
index of its first point (blissdata's stream entry id is ``<index>-1``, so the
same batch sent twice is refused by Redis instead of being duplicated).
Everything here is plain data that round-trips through JSON: the spool never
stores pickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from blissdata.streams.default import Stream
from blissdata.streams.encoding import EncodedBatch


@dataclass(frozen=True)
class StreamPlan:
    """One stream of the scan: name, numpy dtype name (or ``"json"``) and point shape."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None

    def definition(self) -> Any:
        """blissdata's stream definition (its encoder included)."""
        return Stream.make_definition(self.name, self.dtype,
                                      None if self.dtype == "json" else self.shape)


@dataclass(frozen=True)
class Publication:
    """A scan as blissdata's ``create_scan`` and ``create_stream`` take it."""

    label: str  #: for log lines and user messages: ``ascan #12``
    identity: dict[str, Any]
    info: dict[str, Any]
    streams: tuple[StreamPlan, ...]

    def to_json(self) -> str:
        return json.dumps({"label": self.label, "identity": self.identity, "info": self.info,
                           "streams": [[s.name, s.dtype, s.shape] for s in self.streams]})

    @classmethod
    def from_json(cls, text: str) -> Publication:
        doc = json.loads(text)
        streams = tuple(StreamPlan(str(name), str(dtype), None if shape is None else
                                   tuple(int(n) for n in shape))
                        for name, dtype, shape in doc["streams"])
        return cls(str(doc["label"]), dict(doc["identity"]), dict(doc["info"]), streams)

    def encoders(self) -> dict[str, Any]:
        """blissdata's encoder of each stream, by stream name."""
        return {s.name: s.definition().encoder for s in self.streams}


@dataclass(frozen=True)
class Batch:
    """One encoded batch of one stream, starting at point ``start``."""

    stream: str
    start: int
    length: int
    payload: bytes

    @property
    def end(self) -> int:
        """Index of the point after this batch."""
        return self.start + self.length

    def xadd_fields(self) -> dict[str, Any]:
        """The stream entry's fields, exactly as blissdata's ``Stream.send`` writes them."""
        return EncodedBatch(self.payload, len=self.length).todict()


def encode(encoder: Any, stream: str, start: int, values: Any) -> Batch:
    """``values`` (one or more points) of ``stream`` as a :class:`Batch`."""
    encoded = encoder.encode(values)
    return Batch(stream, start, encoded.len, encoded.payload)
