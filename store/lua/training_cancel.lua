-- KEYS: job, running zset, done list. ARGV: id, now (iso).
-- Returns -1 (no such job), 0 (already ended), 1 (was queued: cancelled now), 2 (running: the
-- worker stops at its next step and ends the job as cancelled).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'queued' then
  end_training(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], {'cancel_requested', '1'})
  return 1
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return 2
end
return 0
