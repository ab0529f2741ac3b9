-- KEYS: job. ARGV: field, value. HSET that never recreates an expired job (a key without TTL).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
