"""SPEC writer service: scans from Redis into SPEC files (CLI `sardana-redis spec-writer`,
Tango `RedisSpecWriter`)."""
