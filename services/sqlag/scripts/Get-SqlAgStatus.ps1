# dr-orchestrator: Get-SqlAgStatus v1
<#
.SYNOPSIS
    Reads one Always On availability group as this replica sees it. Read-only.
.DESCRIPTION
    Runs on a replica through SSM Run Command (AWS-RunPowerShellScript). Writes one JSON
    document to stdout: the group's replicas (role, connection, availability mode) from
    sys.availability_groups, sys.availability_replicas and sys.dm_hadr_availability_replica_states,
    and its databases from sys.dm_hadr_database_replica_states (synchronization state, suspension,
    last hardened and last commit times in UTC). On a secondary replica SQL Server lists only the
    local databases; on the primary replica it lists every replica's copy.
    Values are never pasted into T-SQL: the queries read every group and PowerShell filters.
#>
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z][A-Za-z0-9_-]{0,127}$')][string]$AgName,
    [ValidatePattern('^[A-Za-z0-9._\\-]{1,128}$')][string]$SqlInstance = 'localhost'
)
$ErrorActionPreference = 'Stop'
Import-Module SqlServer -ErrorAction Stop

function Invoke-Query([string]$Query) {
    Invoke-Sqlcmd -ServerInstance $SqlInstance -Database master -Query $Query `
        -QueryTimeout 60 -TrustServerCertificate
}

# Local times of the DMVs to UTC ISO 8601 (the server's offset, applied in T-SQL).
$utc = "CONVERT(varchar(23), DATEADD(minute, DATEDIFF(minute, GETDATE(), GETUTCDATE()), {0}), 126) + 'Z'"

$replicas = Invoke-Query @"
SELECT ag.name AS ag_name,
       ar.replica_server_name AS server,
       ars.role_desc AS role,
       ars.is_local,
       ars.connected_state_desc AS connected_state,
       ars.synchronization_health_desc AS sync_health,
       ar.availability_mode_desc AS availability_mode,
       ar.failover_mode_desc AS failover_mode
FROM sys.availability_groups AS ag
JOIN sys.availability_replicas AS ar ON ar.group_id = ag.group_id
LEFT JOIN sys.dm_hadr_availability_replica_states AS ars ON ars.replica_id = ar.replica_id;
"@ | Where-Object { $_.ag_name -eq $AgName }

$databases = Invoke-Query (@"
SELECT ag.name AS ag_name,
       DB_NAME(drs.database_id) AS name,
       ar.replica_server_name AS replica_server,
       drs.is_local,
       drs.is_primary_replica,
       drs.synchronization_state_desc AS sync_state,
       drs.synchronization_health_desc AS sync_health,
       drs.database_state_desc AS database_state,
       drs.is_suspended,
       drs.suspend_reason_desc AS suspend_reason,
       {0} AS last_hardened_time,
       {1} AS last_commit_time,
       drs.log_send_queue_size AS log_send_queue_kb,
       drs.redo_queue_size AS redo_queue_kb
FROM sys.dm_hadr_database_replica_states AS drs
JOIN sys.availability_replicas AS ar ON ar.replica_id = drs.replica_id
JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id;
"@ -f ($utc -f 'drs.last_hardened_time'), ($utc -f 'drs.last_commit_time')) |
    Where-Object { $_.ag_name -eq $AgName }

$server = (Invoke-Query "SELECT @@SERVERNAME AS name;").name
$now = (Invoke-Query "SELECT CONVERT(varchar(23), GETUTCDATE(), 126) + 'Z' AS now;").now

function Get-Value($Value) { if ($Value -is [System.DBNull]) { $null } else { $Value } }

[ordered]@{
    script       = 'Get-SqlAgStatus'
    version      = 1
    ok           = $true
    server       = $server
    ag_name      = $AgName
    ag_found     = [bool]$replicas
    collected_at = $now
    replicas     = @($replicas | ForEach-Object {
        [ordered]@{
            server            = $_.server
            role              = Get-Value $_.role
            is_local          = [bool](Get-Value $_.is_local)
            connected_state   = Get-Value $_.connected_state
            sync_health       = Get-Value $_.sync_health
            availability_mode = $_.availability_mode
            failover_mode     = $_.failover_mode
        }
    })
    databases    = @($databases | ForEach-Object {
        [ordered]@{
            name               = $_.name
            replica_server     = $_.replica_server
            is_local           = [bool]$_.is_local
            is_primary_replica = [bool]$_.is_primary_replica
            sync_state         = $_.sync_state
            sync_health        = $_.sync_health
            database_state     = Get-Value $_.database_state
            is_suspended       = [bool]$_.is_suspended
            suspend_reason     = Get-Value $_.suspend_reason
            last_hardened_time = Get-Value $_.last_hardened_time
            last_commit_time   = Get-Value $_.last_commit_time
            log_send_queue_kb  = Get-Value $_.log_send_queue_kb
            redo_queue_kb      = Get-Value $_.redo_queue_kb
        }
    })
} | ConvertTo-Json -Depth 6 -Compress
