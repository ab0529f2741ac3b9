-- KEYS: job, running zset, done list.
-- ARGV: id, now (iso), now (unix), lease_until (unix), worker name, max attempts, lease (s).
-- Returns {outcome, detail}: {'start', attempt} | {'leased', lease_until} (another attempt may
-- be alive) | {'ended', status} | {'gone', ''}.
local h = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'attempts', 'cancel_requested')
if not h[1] then return {'gone', ''} end
if h[1] == 'running' then
  if tonumber(h[2]) > tonumber(ARGV[3]) then return {'leased', h[2]} end
elseif h[1] ~= 'queued' then
  return {'ended', h[1]}
end
-- queued, or running under an expired lease: the attempt that held it is dead.
if h[4] == '1' then
  end_training(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], {})
  return {'ended', 'cancelled'}
end
local attempt = tonumber(h[3]) + 1
if attempt > tonumber(ARGV[6]) then
  end_training(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'failed', ARGV[2],
               {'error', 'worker lost: the training was interrupted ' .. h[3] .. ' time(s)'})
  return {'ended', 'failed'}
end
if h[1] == 'queued' then redis.call('HSET', KEYS[1], 'started_at', ARGV[2]) end
redis.call('HSET', KEYS[1], 'status', 'running', 'attempts', attempt, 'worker', ARGV[5],
           'lease_until', ARGV[4], 'lease_s', ARGV[7], 'updated_at', ARGV[2], 'epoch', '0',
           'step', '0', 'loss', '', 'accuracy', '', 'val_loss', '', 'val_accuracy', '',
           'elapsed_s', '', 'eta_s', '', 'history', '[]')
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {'start', attempt}
