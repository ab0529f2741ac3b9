-- (job_context.lua) own KEYS: [5] the reaper's unconfirmed resends; own ARGV: [5] chunk,
-- [6] job id, [7] '1' to count an interruption.
-- Decides whether a chunk must be queued again: it is still pending in an active job and no
-- worker holds a lease on it that runs past now (a holder renews it while it works). Removes
-- a lapsed lease: the new delivery takes a fresh one. A chunk to send again is listed in the
-- resends until its sender confirms the send (store.recovery.Reaper.sent), so a send that
-- never happened is decided again a lease later; one that needs no sending leaves the list.
-- Returns {the job's queue, its tenant's queued items ahead of this chunk} when the caller
-- must send the chunk again (the backlog sets its priority, as the API's first send did:
-- worker.names.chunk_priority), else false.
local j = job_context()
local member = ARGV[6] .. ':' .. ARGV[5]
local function no_send()
  redis.call('ZREM', KEYS[5], member)
  return false
end
local lease = redis.call('ZSCORE', j.leases, member)
if lease and tonumber(lease) >= j.now_unix then return no_send() end
redis.call('ZREM', j.leases, member)
local h = redis.call('HMGET', j.key, 'status', 'queue', 'tenant', 'chunk_size')
if not h[1] or not is_active(h[1]) then return no_send() end
if redis.call('SISMEMBER', j.pending, ARGV[5]) == 0 then return no_send() end
if ARGV[7] == '1' then redis.call('HINCRBY', j.key, 'attempts:' .. ARGV[5], 1) end
redis.call('ZADD', KEYS[5], j.now_unix, member)
local queued = tonumber(redis.call('HGET', j.usage, h[3] .. '|queued_items') or '0')
return {h[2], math.max(0, queued - tonumber(h[4]))}
