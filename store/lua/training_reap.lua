-- KEYS: job, running zset, done list.
-- ARGV: id, now (iso), now (unix), default lease (s), redelivery allowance (s).
-- Ends a running job whose lease expired one more lease (+ allowance) ago: its worker died, and
-- a redelivered task had that long to restart it. Cancelled if a cancel was asked for, else
-- failed with the reason. Returns 1 when it did.
local h = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'cancel_requested', 'lease_s')
if h[1] ~= 'running' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local grace = (tonumber(h[4]) or tonumber(ARGV[4])) + tonumber(ARGV[5])
if tonumber(h[2]) + grace > tonumber(ARGV[3]) then return 0 end
if h[3] == '1' then
  end_training(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], {})
else
  end_training(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'failed', ARGV[2],
               {'error', 'worker lost: no heartbeat from the training worker'})
end
return 1
