-- KEYS: job, done list, metrics jobs, metrics active. ARGV: now, done channel.
-- Returns -1 (no such job), 0 (already finished: nothing to cancel) or 1 (cancelled now).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancel_requested', '1', 'finished_at', ARGV[1])
count_transition({jobs = KEYS[3], active = KEYS[4]}, status, 'cancelled')
announce_end(KEYS[1], KEYS[2], ARGV[2], 'cancelled', redis.call('HGET', KEYS[1], 'expire_at'))
return 1
