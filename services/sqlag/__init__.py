"""SQL Server Always On availability groups: failover, failback and drills (see README.md)."""
