-- KEYS: seq, index, active.
-- ARGV: model key prefix, only_if_empty (0/1), activate_if_none (0/1), registered_at, source,
--       size_bytes, meta JSON, checkpoint bytes, onnx bytes ('' = none yet).
-- A version appears all at once (bytes, record, index): no reader sees a half-registered
-- model, and two workers seeding an empty registry create one version. The new version's keys
-- are the prefix + its name (store.keys.model_key), fine on a single Redis (not Cluster).
-- Returns the new version's name, or false when only_if_empty and a version exists.
if ARGV[2] == '1' and redis.call('ZCARD', KEYS[2]) > 0 then return false end
local n = redis.call('INCR', KEYS[1])
local version = 'v' .. n
local key = ARGV[1] .. version
redis.call('SET', key .. ':safetensors', ARGV[8])
if ARGV[9] ~= '' then redis.call('SET', key .. ':onnx', ARGV[9]) end
redis.call('HSET', key, 'version', version, 'registered_at', ARGV[4], 'source', ARGV[5],
           'size_bytes', ARGV[6], 'meta', ARGV[7])
redis.call('ZADD', KEYS[2], n, version)
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[3], version)
end
return version
