-- (job_context.lua) own KEYS: [5] active model version.
-- own ARGV: [5] chunk, [6] lease expiry (unix), [7] '1' when this delivery follows an
-- interrupted one (a worker died with the chunk, or its lease lapsed): it counts.
-- Fixes the job's model version if no chunk has yet (its pinned `model`, else the active one,
-- so an activation mid-job never mixes two models in one job), marks a queued job running and
-- leases the chunk to the caller, who renews the lease while it works.
-- Returns {attempt, flat HGETALL} with attempt = interruptions so far + 1; {} when the job is
-- gone; {0, flat HGETALL} when the job needs a version and none is registered (no change).
local h = redis.call('HMGET', KEYS[1], 'status', 'model_version', 'model', 'id')
if not h[1] then return {} end
local j = job_context()
local chunk = ARGV[5]
local active = is_active(h[1])
if active and (not h[2] or h[2] == '') then
  local version = h[3]
  if not version or version == '' then version = redis.call('GET', KEYS[5]) end
  if not version then return {0, redis.call('HGETALL', j.key)} end
  redis.call('HSET', j.key, 'model_version', version)
end
if h[1] == 'queued' then
  redis.call('HSET', j.key, 'status', 'running', 'started_at', j.now)
  count_transition(j, 'queued', 'running')
end
local interrupted = tonumber(redis.call('HGET', j.key, 'attempts:' .. chunk) or '0')
if ARGV[7] == '1' then
  interrupted = redis.call('HINCRBY', j.key, 'attempts:' .. chunk, 1)
end
if active then redis.call('ZADD', j.leases, ARGV[6], h[4] .. ':' .. chunk) end
return {interrupted + 1, redis.call('HGETALL', j.key)}
