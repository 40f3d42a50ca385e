"""``sardana-redis web``: a read-only live viewer of blissdata scans in a browser.

:mod:`~sardana_redis.web.view` decides what is drawn and keeps it bounded (pure),
:mod:`~sardana_redis.web.feeds` reads Redis (one thread per scan, shared by its
viewers), :mod:`~sardana_redis.web.app` serves the pages and the event streams.
"""
