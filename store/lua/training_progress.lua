-- KEYS: job, running zset. ARGV: id, lease_until, then field/value pairs.
-- Renews the lease and writes progress. Returns 1 if a cancel was requested, 0 to go on, -1
-- when the job is no longer running (reaped, or gone): the attempt must stop.
local h = redis.call('HMGET', KEYS[1], 'status', 'cancel_requested')
if h[1] ~= 'running' then return -1 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if h[2] == '1' then return 1 end
return 0
