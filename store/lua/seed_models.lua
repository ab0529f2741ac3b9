-- KEYS: seq, index, active.
-- ARGV: model key prefix, registered_at, then per model 5 values: source, size_bytes,
--       meta JSON, checkpoint bytes, onnx bytes ('' = none).
-- Seeds an empty registry with several versions at once (a routed pair: the partner first),
-- the last one active: two workers seeding at once create one set, and no reader ever sees
-- half of it. Returns the new versions' names, or false when a version exists already.
if redis.call('ZCARD', KEYS[2]) > 0 then return false end
local versions = {}
for i = 3, #ARGV, 5 do
  local n = redis.call('INCR', KEYS[1])
  local version = 'v' .. n
  local key = ARGV[1] .. version
  redis.call('SET', key .. ':safetensors', ARGV[i + 3])
  if ARGV[i + 4] ~= '' then redis.call('SET', key .. ':onnx', ARGV[i + 4]) end
  redis.call('HSET', key, 'version', version, 'registered_at', ARGV[2], 'source', ARGV[i],
             'size_bytes', ARGV[i + 1], 'meta', ARGV[i + 2])
  redis.call('ZADD', KEYS[2], n, version)
  versions[#versions + 1] = version
end
redis.call('SET', KEYS[3], versions[#versions])
return versions
