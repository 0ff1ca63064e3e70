"""Recovery of managed-service resources (EFS, FSx for NetApp ONTAP, ALB/NLB names,
ElastiCache) and DNS records that follow servers recovered by drs. See README.md."""
