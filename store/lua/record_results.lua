-- KEYS: job, results, chunk inputs to drop ('' = none), done list, metrics jobs, metrics active
-- ARGV: now, done channel, then triples (index, counter: done|failed|skipped, result JSON)
-- Writes each result once, counts it once, finishes the job when complete.
-- Returns -1 when the job is gone (expired/deleted), else 1 if this call finished the job.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local added = {done = 0, failed = 0, skipped = 0}
for i = 3, #ARGV, 3 do
  -- HSETNX: an item is written and counted only the first time (a re-run chunk is a no-op)
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 2]) == 1 then
    added[ARGV[i + 1]] = added[ARGV[i + 1]] + 1
  end
end
for counter, n in pairs(added) do
  if n > 0 then redis.call('HINCRBY', KEYS[1], counter, n) end
end
redis.call('EXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'expire_at'))
if KEYS[3] ~= '' then redis.call('DEL', KEYS[3]) end
return finish_job(KEYS[1], KEYS[4], ARGV[2], {jobs = KEYS[5], active = KEYS[6]}, ARGV[1],
                  KEYS[2])
