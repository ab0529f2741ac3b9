-- (job_context.lua) own KEYS: [5] item list, [6] the tenant's job index.
-- Removes a job whose upload failed half-way (the API saw the error): every key, its index
-- entries and leases; uncounts it (metrics, usage) if it was counted as active. Its queued
-- chunks find nothing.
local h = redis.call('HMGET', KEYS[1], 'status', 'id')
local j = job_context()
if h[1] and is_active(h[1]) then
  count_transition(j, h[1], 'discarded')
  release_job(j)
end
if h[2] then
  for _, chunk in ipairs(redis.call('SMEMBERS', j.pending)) do
    redis.call('DEL', j.input_prefix .. chunk)
    redis.call('ZREM', j.leases, h[2] .. ':' .. chunk)
  end
  for _, index in ipairs({KEYS[6], j.active_jobs, j.uploading, j.deadlines, j.outbox}) do
    redis.call('ZREM', index, h[2])
  end
end
redis.call('DEL', j.key, j.results, j.done, j.pending, KEYS[5])
return 1
