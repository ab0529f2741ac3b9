-- (job_context.lua) own KEYS: [5] the job's Idempotency-Key ('' = none to release).
-- own ARGV: [5] reason: 'deadline' (its deadline passed) or 'upload interrupted' (the API
-- stopped writing it before it was sealed).
-- Ends an active job before its items are all done: they read as skipped. A job past its
-- deadline that tagged something is `succeeded`, else `failed`; an interrupted upload is
-- `failed` and frees its Idempotency-Key (if it still names this job) for a retry.
-- Returns 1 when it ended the job, 0 when it had ended already, -1 when it is gone.
local h = redis.call('HMGET', KEYS[1], 'status', 'done', 'id')
if not h[1] then return -1 end
if not is_active(h[1]) then return 0 end
local j = job_context()
local reason = ARGV[5]
local status = 'failed'
if reason == 'deadline' and tonumber(h[2]) > 0 then status = 'succeeded' end
redis.call('HSET', j.key, 'status', status, 'finished_at', j.now, 'end_reason', reason)
if h[1] == 'queued' then redis.call('HSET', j.key, 'started_at', j.now) end
count_transition(j, h[1], status)
end_job(j, status, nil)
if KEYS[5] ~= '' and redis.call('GET', KEYS[5]) == h[3] then redis.call('DEL', KEYS[5]) end
return 1
