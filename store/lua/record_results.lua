-- (job_context.lua) own ARGV: [5] chunk, then triples (index, counter: done|failed|skipped,
-- result JSON).
-- Releases the chunk (lease, pending, inputs), writes each result once and counts it once,
-- and finishes the job when it is complete. A job that has already ended (cancelled, past
-- its deadline) takes no more results: its unprocessed items read as skipped.
-- Starts by deleting (lease, pending mark, inputs): Redis lets a script that has written go on
-- writing past `maxmemory`, so results are recorded, and memory freed, even when it is full.
-- Returns -1 when the job is gone (expired or deleted), else 1 if this call finished the job.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local j = job_context()
local chunk = ARGV[5]
redis.call('ZREM', j.leases, redis.call('HGET', j.key, 'id') .. ':' .. chunk)
redis.call('SREM', j.pending, chunk)
drop_inputs(j, chunk)
if not is_active(redis.call('HGET', j.key, 'status')) then return 0 end
local added = {done = 0, failed = 0, skipped = 0}
for i = 6, #ARGV, 3 do
  -- HSETNX: an item is written and counted only the first time (a re-run chunk is a no-op)
  if redis.call('HSETNX', j.results, ARGV[i], ARGV[i + 2]) == 1 then
    added[ARGV[i + 1]] = added[ARGV[i + 1]] + 1
  end
end
local n = 0
for counter, k in pairs(added) do
  if k > 0 then redis.call('HINCRBY', j.key, counter, k) end
  n = n + k
end
if n > 0 then items_done(j, n) end
redis.call('EXPIREAT', j.results, redis.call('HGET', j.key, 'expire_at'))
return finish_if_complete(j)
