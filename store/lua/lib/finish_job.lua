-- Finish the job if it is sealed (all items written) and every item is accounted for; only a
-- job still queued or running can finish, so this fires exactly once per job. `results` (the
-- results hash) rides along in the announcement of a one-item job.
-- Returns 1 when this call finished the job.
local function finish_job(job, done_list, channel, counts, now, results)
  local h = redis.call('HMGET', job, 'total', 'done', 'failed', 'skipped', 'sealed', 'status',
                       'expire_at')
  if h[5] ~= '1' or (h[6] ~= 'queued' and h[6] ~= 'running') then return 0 end
  local total, failed = tonumber(h[1]), tonumber(h[3])
  if tonumber(h[2]) + failed + tonumber(h[4]) < total then return 0 end
  local status = 'succeeded'
  if total > 0 and failed == total then status = 'failed' end
  redis.call('HSET', job, 'status', status, 'finished_at', now)
  if h[6] == 'queued' then redis.call('HSET', job, 'started_at', now) end
  count_transition(counts, h[6], status)
  if total ~= 1 then results = nil end
  announce_end(job, done_list, channel, status, h[7], results)
  return 1
end
