-- KEYS: job, active model version, metrics jobs, metrics active
-- ARGV: now, attempts field ('' = do not count)
-- Starts a chunk: fixes the job's model version if no chunk has yet (its pinned `model`, else
-- the active one, so an activation mid-job never mixes two models in one job), marks a queued
-- job running and counts this attempt (a chunk that keeps killing its worker is given up on).
-- Returns {attempt, flat HGETALL}; {} when the job is gone; {0, flat HGETALL} when the job
-- still needs a version and none is registered (nothing was changed).
local h = redis.call('HMGET', KEYS[1], 'status', 'model_version', 'model')
if not h[1] then return {} end
local active = h[1] == 'queued' or h[1] == 'running'
if active and (not h[2] or h[2] == '') then
  local version = h[3]
  if not version or version == '' then version = redis.call('GET', KEYS[2]) end
  if not version then return {0, redis.call('HGETALL', KEYS[1])} end
  redis.call('HSET', KEYS[1], 'model_version', version)
end
if h[1] == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
  count_transition({jobs = KEYS[3], active = KEYS[4]}, 'queued', 'running')
end
local attempt = 1
if ARGV[2] ~= '' then attempt = redis.call('HINCRBY', KEYS[1], ARGV[2], 1) end
return {attempt, redis.call('HGETALL', KEYS[1])}
