# dr-orchestrator: Test-SqlAgClone v1
<#
.SYNOPSIS
    Bubble-test drill on an isolated clone of an availability group replica.
.DESCRIPTION
    Runs on the clone instance (a copy of the DR replica inside the isolated bubble-test network),
    never on a production replica. Refuses (CLONE_NOT_ISOLATED) while any other replica of the
    group is CONNECTED: the clone must not reach production. Then brings the clone's copy of the
    group online on its own (FORCE_FAILOVER_ALLOW_DATA_LOSS, on the clone only) unless it already
    is, and validates every database: ONLINE and readable (a catalog query in each). Writes one
    JSON document to stdout; a refusal or an unreadable database exits 1 with ok=false.
#>
param(
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z][A-Za-z0-9_-]{0,127}$')][string]$AgName,
    [ValidatePattern('^[A-Za-z0-9._\\-]{1,128}$')][string]$SqlInstance = 'localhost'
)
$ErrorActionPreference = 'Stop'
Import-Module SqlServer -ErrorAction Stop

function Invoke-Query([string]$Query, [string]$Database = 'master', [int]$Timeout = 60) {
    Invoke-Sqlcmd -ServerInstance $SqlInstance -Database $Database -Query $Query `
        -QueryTimeout $Timeout -TrustServerCertificate
}
function Write-Result($Result, [int]$ExitCode = 0) {
    $Result | ConvertTo-Json -Depth 6 -Compress
    exit $ExitCode
}

$result = [ordered]@{
    script = 'Test-SqlAgClone'; version = 1; ok = $false; ag_name = $AgName; server = $null
    action = 'none'; role_after = $null; error_code = $null; message = $null; databases = @()
}
$result.server = (Invoke-Query "SELECT @@SERVERNAME AS name;").name
$replicas = Invoke-Query @"
SELECT ag.name AS ag_name, ar.replica_server_name AS server, ars.is_local,
       ars.role_desc AS role, ars.connected_state_desc AS connected_state
FROM sys.availability_groups AS ag
JOIN sys.availability_replicas AS ar ON ar.group_id = ag.group_id
LEFT JOIN sys.dm_hadr_availability_replica_states AS ars ON ars.replica_id = ar.replica_id;
"@ | Where-Object { $_.ag_name -eq $AgName }
$local = $replicas | Where-Object { $_.is_local -eq $true } | Select-Object -First 1
if (-not $local) {
    $result.error_code = 'AG_NOT_FOUND'
    $result.message = "availability group $AgName has no replica on this clone"
    Write-Result $result 1
}
$connected = @($replicas | Where-Object { $_.is_local -ne $true -and $_.connected_state -eq 'CONNECTED' })
if ($connected.Count -gt 0) {
    $result.error_code = 'CLONE_NOT_ISOLATED'
    $result.message = 'the clone reaches other replicas: ' + (($connected | ForEach-Object { $_.server }) -join ', ')
    Write-Result $result 1
}
if ($local.role -ne 'PRIMARY') {
    $agIdentifier = '[' + $AgName.Replace(']', ']]') + ']'
    Invoke-Query "ALTER AVAILABILITY GROUP $agIdentifier FORCE_FAILOVER_ALLOW_DATA_LOSS;" 'master' 600 | Out-Null
    $result.action = 'clone-brought-online'
}
$result.role_after = (Invoke-Query @"
SELECT ag.name AS ag_name, ars.role_desc AS role
FROM sys.availability_groups AS ag
JOIN sys.availability_replicas AS ar ON ar.group_id = ag.group_id
JOIN sys.dm_hadr_availability_replica_states AS ars ON ars.replica_id = ar.replica_id
WHERE ars.is_local = 1;
"@ | Where-Object { $_.ag_name -eq $AgName } | Select-Object -First 1).role
$databases = Invoke-Query @"
SELECT ag.name AS ag_name, DB_NAME(drs.database_id) AS name, d.state_desc AS database_state,
       CONVERT(varchar(23), DATEADD(minute, DATEDIFF(minute, GETDATE(), GETUTCDATE()), drs.last_commit_time), 126) + 'Z' AS last_commit_time
FROM sys.dm_hadr_database_replica_states AS drs
JOIN sys.availability_groups AS ag ON ag.group_id = drs.group_id
JOIN sys.databases AS d ON d.database_id = drs.database_id
WHERE drs.is_local = 1;
"@ | Where-Object { $_.ag_name -eq $AgName }
$unreadable = @()
foreach ($database in $databases) {
    $readable = $false
    if ($database.database_state -eq 'ONLINE') {
        try {
            Invoke-Query "SELECT COUNT(*) AS objects FROM sys.objects;" ([string]$database.name) | Out-Null
            $readable = $true
        } catch { $readable = $false }
    }
    if (-not $readable) { $unreadable += [string]$database.name }
    $result.databases += [ordered]@{
        name = [string]$database.name; database_state = $database.database_state
        readable = $readable; last_commit_time = $database.last_commit_time
    }
}
$result.ok = ($result.role_after -eq 'PRIMARY' -and $unreadable.Count -eq 0 -and $result.databases.Count -gt 0)
if (-not $result.ok) {
    $result.error_code = 'CLONE_UNHEALTHY'
    $result.message = "clone is $($result.role_after); databases not readable: " + ($unreadable -join ', ')
    Write-Result $result 1
}
Write-Result $result
