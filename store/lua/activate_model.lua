-- KEYS: model hash, active, activations list. ARGV: version, activation entry JSON.
-- Returns 1 when activated, 0 when there is no such version.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], 0, 99)
return 1
