-- (job_context.lua) own KEYS: [5] item list, [6] the chunk's input hash.
-- own ARGV: [5] chunk, [6] expire_at, [7] n, then n item metadata JSON, then pairs
-- (item index, image bytes).
-- Writes (a piece of) a bulk job's chunk: appends its items, stores its image bytes and counts
-- both (usage: the tenant's queued items, every job's input bytes) in the job that holds them.
-- An ended job (cancelled while uploading) takes nothing more, so nothing is counted that no
-- script would uncount.
-- Returns {1, the tenant's queued items, every job's input bytes, the tenant's input bytes}
-- when written; {0} when the job has ended, {-1} when it is gone.
local h = redis.call('HMGET', KEYS[1], 'status', 'tenant', 'sealed', 'id')
if not h[1] then return {-1} end
if not is_active(h[1]) then return {0} end
local j = job_context()
local chunk, expire_at, n = ARGV[5], ARGV[6], tonumber(ARGV[7])
if n > 0 then
  for i = 8, 7 + n do redis.call('RPUSH', KEYS[5], ARGV[i]) end
  redis.call('EXPIREAT', KEYS[5], expire_at)
end
redis.call('SADD', j.pending, chunk)
redis.call('EXPIREAT', j.pending, expire_at)
-- Still uploading: the reaper ends it if the writes stop (its API died).
if h[3] ~= '1' then redis.call('ZADD', j.uploading, j.now_unix, h[4]) end
local bytes = 0
for i = 8 + n, #ARGV, 2 do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[i + 1])
  bytes = bytes + #ARGV[i + 1]
end
if bytes > 0 then
  redis.call('EXPIREAT', KEYS[6], expire_at)
  redis.call('HINCRBY', j.key, 'inbytes:' .. chunk, bytes)
  redis.call('HINCRBY', j.usage, 'input_bytes', bytes)
end
local mine = redis.call('HINCRBY', j.usage, h[2] .. '|input_bytes', bytes)
redis.call('HINCRBY', j.key, 'queued', n)
local queued = redis.call('HINCRBY', j.usage, h[2] .. '|queued_items', n)
return {1, queued, tonumber(redis.call('HGET', j.usage, 'input_bytes') or '0'), mine}
