"""sardana-redis: Sardana scans published live into Redis as blissdata scans."""

__version__ = "0.1.0"
