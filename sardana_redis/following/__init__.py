"""Following scans in Redis for writer services: ledger, rows, paths, follower, Tango shell."""
