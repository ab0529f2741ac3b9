-- (job_context.lua)
-- Returns -1 (no such job), 0 (already ended: nothing to cancel) or 1 (cancelled now).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if not is_active(status) then return 0 end
local j = job_context()
redis.call('HSET', j.key, 'status', 'cancelled', 'cancel_requested', '1', 'finished_at', j.now,
           'end_reason', 'cancelled')
count_transition(j, status, 'cancelled')
end_job(j, 'cancelled', nil)
return 1
