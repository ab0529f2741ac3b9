-- End a training job: status, finished_at, extra fields; drop it from the running set; wake
-- the waiters on its done list.
local function end_training(job, running, done, id, status, now, extra)
  redis.call('HSET', job, 'status', status, 'finished_at', now, 'lease_until', '0')
  for i = 1, #extra, 2 do redis.call('HSET', job, extra[i], extra[i + 1]) end
  redis.call('ZREM', running, id)
  redis.call('RPUSH', done, status)
  redis.call('EXPIREAT', done, redis.call('HGET', job, 'expire_at'))
end
