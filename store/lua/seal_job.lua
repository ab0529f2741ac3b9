-- (job_context.lua) own ARGV: [5] total, [6] chunks.
-- All items are written: record the totals, then finish at once if the workers already have.
-- Returns -1 when the job is gone, else 1 if this call finished the job.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local j = job_context()
redis.call('HSET', j.key, 'total', ARGV[5], 'chunks', ARGV[6], 'sealed', '1')
redis.call('ZREM', j.uploading, redis.call('HGET', j.key, 'id'))
return finish_if_complete(j)
