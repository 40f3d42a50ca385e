"""NeXus writer service (to come)."""
