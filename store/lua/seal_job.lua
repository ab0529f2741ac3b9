-- KEYS: job, done list, metrics jobs, metrics active. ARGV: total, chunks, now, done channel.
-- All items are written: record the totals, then finish at once if the workers already have.
-- Returns -1 when the job is gone, else 1 if this call finished the job.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'chunks', ARGV[2], 'sealed', '1')
return finish_job(KEYS[1], KEYS[2], ARGV[4], {jobs = KEYS[3], active = KEYS[4]}, ARGV[3], nil)
