"""The producer side: a Sardana scan in, a blissdata scan in Redis out.

``sardana_adapter`` turns a record list into a neutral ``ScanDescription``;
``scan_info`` and ``h5maps`` describe it for readers; ``column_batches``
converts records into typed batches; ``spool`` keeps every batch until Redis
has it; ``publisher`` is the state machine that moves batches from the spool
into a blissdata scan, across Redis outages; ``heartbeat`` tells the memory
tracker that the publisher is alive.
"""
