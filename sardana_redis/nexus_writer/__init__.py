"""NeXus writer service: scans from Redis into NeXus/HDF5 files (CLI
`sardana-redis nexus-writer`, Tango `RedisNexusWriter`)."""
