-- KEYS: metrics jobs, metrics active, the tenant's job index, then the job's keys (its record
-- first). ARGV: job id.
-- Removes a job whose upload failed half-way; uncounts it if it was counted as active.
local status = redis.call('HGET', KEYS[4], 'status')
if status == 'queued' or status == 'running' then
  count_transition({jobs = KEYS[1], active = KEYS[2]}, status, 'discarded')
end
redis.call('DEL', unpack(KEYS, 4, #KEYS))
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
