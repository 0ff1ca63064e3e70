# dr-orchestrator: Invoke-SqlAgFailover v1
<#
.SYNOPSIS
    Makes this replica the primary replica of an availability group: planned or forced failover.
.DESCRIPTION
    Runs on the failover target (a secondary replica) through SSM Run Command. Checks again,
    here, what the orchestrator checked before sending it, then:
      Planned: ALTER AVAILABILITY GROUP [ag] FAILOVER - only when this replica commits
               synchronously and every local database is SYNCHRONIZED (no data loss).
      Forced:  ALTER AVAILABILITY GROUP [ag] FORCE_FAILOVER_ALLOW_DATA_LOSS - never while a local
               database is REVERTING or INITIALIZING (it could not be brought online).
    Already primary: nothing is done (a repeated command never fails over twice).
    Writes one JSON document to stdout; a refusal exits 1 with ok=false and an error code.
#>
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z][A-Za-z0-9_-]{0,127}$')][string]$AgName,
    [Parameter(Mandatory)][ValidateSet('Planned', 'Forced')][string]$Mode,
    [ValidatePattern('^[A-Za-z0-9._\\-]{1,128}$')][string]$SqlInstance = 'localhost'
)
$ErrorActionPreference = 'Stop'
Import-Module SqlServer -ErrorAction Stop

function Invoke-Query([string]$Query, [int]$Timeout = 60) {
    Invoke-Sqlcmd -ServerInstance $SqlInstance -Database master -Query $Query `
        -QueryTimeout $Timeout -TrustServerCertificate
}

function Write-Result($Result, [int]$ExitCode = 0) {
    $Result | ConvertTo-Json -Depth 6 -Compress
    exit $ExitCode
}

function Get-LocalState {
    $replica = Invoke-Query @"
SELECT ag.name AS ag_name, ars.role_desc AS role, ar.availability_mode_desc AS availability_mode
FROM sys.availability_groups AS ag
JOIN sys.availability_replicas AS ar ON ar.group_id = ag.group_id
JOIN sys.dm_hadr_availability_replica_states AS ars ON ars.replica_id = ar.replica_id
WHERE ars.is_local = 1;
"@ | Where-Object { $_.ag_name -eq $AgName } | Select-Object -First 1
    $databases = Invoke-Query @"
SELECT ag.name AS ag_name, DB_NAME(drs.database_id) AS name,
       drs.synchronization_state_desc AS sync_state, drs.database_state_desc AS database_state
FROM sys.dm_hadr_database_replica_states AS drs
JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id
WHERE drs.is_local = 1;
"@ | Where-Object { $_.ag_name -eq $AgName }
    [ordered]@{ replica = $replica; databases = @($databases) }
}

# The group name as a T-SQL identifier: validated above, and bracket-quoted like QUOTENAME.
$agIdentifier = '[' + $AgName.Replace(']', ']]') + ']'
$before = Get-LocalState
$result = [ordered]@{
    script = 'Invoke-SqlAgFailover'; version = 1; ok = $false; ag_name = $AgName; mode = $Mode
    role_before = $null; role_after = $null; action = 'none'; error_code = $null; message = $null
    databases = @($before.databases | ForEach-Object { [ordered]@{ name = $_.name; sync_state = $_.sync_state } })
}
if (-not $before.replica) {
    $result.error_code = 'AG_NOT_FOUND'
    $result.message = "availability group $AgName has no replica on this server"
    Write-Result $result 1
}
$result.role_before = $before.replica.role
if ($before.replica.role -eq 'PRIMARY') {
    $result.ok = $true; $result.role_after = 'PRIMARY'
    $result.message = 'this replica is already the primary replica: nothing done'
    Write-Result $result
}
if ($Mode -eq 'Planned') {
    $notSynchronized = @($before.databases | Where-Object { $_.sync_state -ne 'SYNCHRONIZED' })
    if ($before.replica.availability_mode -ne 'SYNCHRONOUS_COMMIT' -or $notSynchronized.Count -gt 0 -or $before.databases.Count -eq 0) {
        $result.error_code = 'NOT_SYNCHRONIZED'
        $result.message = 'planned failover needs synchronous commit and every database SYNCHRONIZED'
        Write-Result $result 1
    }
    Invoke-Query "ALTER AVAILABILITY GROUP $agIdentifier FAILOVER;" 600 | Out-Null
    $result.action = 'planned-failover'
} else {
    $unsafe = @($before.databases | Where-Object { $_.sync_state -in @('REVERTING', 'INITIALIZING') })
    if ($unsafe.Count -gt 0) {
        $result.error_code = 'UNSAFE_SYNC_STATE'
        $result.message = 'forced failover refused: databases REVERTING or INITIALIZING: ' + (($unsafe | ForEach-Object { $_.name }) -join ', ')
        Write-Result $result 1
    }
    Invoke-Query "ALTER AVAILABILITY GROUP $agIdentifier FORCE_FAILOVER_ALLOW_DATA_LOSS;" 600 | Out-Null
    $result.action = 'forced-failover'
}
$after = Get-LocalState
$result.role_after = $after.replica.role
$result.ok = ($after.replica.role -eq 'PRIMARY')
if (-not $result.ok) {
    $result.error_code = 'FAILOVER_NOT_VERIFIED'
    $result.message = "after $($result.action) this replica is $($after.replica.role)"
    Write-Result $result 1
}
Write-Result $result
