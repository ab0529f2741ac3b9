-- (job_context.lua) own ARGV: [5] chunk, [6] job id, [7] '1' to count an interruption.
-- Decides whether a chunk must be queued again: it is still pending in an active job and no
-- worker holds a lease on it that runs past now (a holder renews it while it works). Removes
-- a lapsed lease: the new delivery takes a fresh one.
-- Returns {the job's queue, its tenant's queued items ahead of this chunk} when the caller
-- must send the chunk again (the backlog sets its priority, as the API's first send did:
-- worker.names.chunk_priority), else false.
local j = job_context()
local member = ARGV[6] .. ':' .. ARGV[5]
local lease = redis.call('ZSCORE', j.leases, member)
if lease and tonumber(lease) >= j.now_unix then return false end
redis.call('ZREM', j.leases, member)
local h = redis.call('HMGET', j.key, 'status', 'queue', 'tenant', 'chunk_size')
if not h[1] or not is_active(h[1]) then return false end
if redis.call('SISMEMBER', j.pending, ARGV[5]) == 0 then return false end
if ARGV[7] == '1' then redis.call('HINCRBY', j.key, 'attempts:' .. ARGV[5], 1) end
local queued = tonumber(redis.call('HGET', j.usage, h[3] .. '|queued_items') or '0')
return {h[2], math.max(0, queued - tonumber(h[4]))}
