-- KEYS: job, running zset, done list. ARGV: id, status, now (iso), then field/value pairs.
-- Returns 1 when this call ended the job, 0 when it was not running any more.
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
local extra = {}
for i = 4, #ARGV do extra[#extra + 1] = ARGV[i] end
end_training(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], extra)
return 1
