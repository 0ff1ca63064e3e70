# dr-orchestrator: Resume-SqlAgDataMovement v1
<#
.SYNOPSIS
    Resumes data movement of this secondary replica's suspended availability databases.
.DESCRIPTION
    After a forced failover SQL Server suspends data movement on the other replicas. Failback
    runs this on the original primary replica (now a secondary): for each local database of the
    group that is suspended, ALTER DATABASE [db] SET HADR RESUME. Databases not suspended are left
    alone (running it twice changes nothing). Writes one JSON document to stdout.
#>
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z][A-Za-z0-9_-]{0,127}$')][string]$AgName,
    [ValidatePattern('^[A-Za-z0-9._\\-]{1,128}$')][string]$SqlInstance = 'localhost'
)
$ErrorActionPreference = 'Stop'
Import-Module SqlServer -ErrorAction Stop

$suspended = Invoke-Sqlcmd -ServerInstance $SqlInstance -Database master -TrustServerCertificate -Query @"
SELECT ag.name AS ag_name, DB_NAME(drs.database_id) AS name, drs.is_suspended
FROM sys.dm_hadr_database_replica_states AS drs
JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id
WHERE drs.is_local = 1;
"@ | Where-Object { $_.ag_name -eq $AgName -and $_.is_suspended }

$resumed = @()
foreach ($database in $suspended) {
    # A database name as a T-SQL identifier, bracket-quoted like QUOTENAME.
    $identifier = '[' + ([string]$database.name).Replace(']', ']]') + ']'
    Invoke-Sqlcmd -ServerInstance $SqlInstance -Database master -TrustServerCertificate `
        -QueryTimeout 120 -Query "ALTER DATABASE $identifier SET HADR RESUME;" | Out-Null
    $resumed += [string]$database.name
}
[ordered]@{
    script = 'Resume-SqlAgDataMovement'; version = 1; ok = $true; ag_name = $AgName
    resumed = $resumed
} | ConvertTo-Json -Depth 4 -Compress
