"""Lua scripts for the training job store (worker.trainjobs).

A training job is `running` only while a worker holds its lease (`lease_until`, unix seconds,
renewed every few seconds). Every transition is one script, so a reaper, a cancel and a
redelivered task racing each other always leave one consistent state. Times come in as
arguments (scripts stay deterministic; tests pass their own clock).
"""

from __future__ import annotations

# End a running job: status, finished_at, fields; drop it from the running set; wake waiters.
_END = """
local function end_job(job, running, done, id, status, now, extra)
  redis.call('HSET', job, 'status', status, 'finished_at', now, 'lease_until', '0')
  for i = 1, #extra, 2 do redis.call('HSET', job, extra[i], extra[i + 1]) end
  redis.call('ZREM', running, id)
  redis.call('RPUSH', done, status)
  redis.call('EXPIREAT', done, redis.call('HGET', job, 'expire_at'))
end
"""

# KEYS: job, running zset, done list.
# ARGV: id, now (iso), now (unix), lease_until (unix), worker name, max attempts, lease (s).
# Returns {outcome, detail}: {'start', attempt} | {'leased', lease_until} (another attempt may
# be alive) | {'ended', status} | {'gone', ''}.
START = _END + """
local h = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'attempts', 'cancel_requested')
if not h[1] then return {'gone', ''} end
if h[1] == 'running' then
  if tonumber(h[2]) > tonumber(ARGV[3]) then return {'leased', h[2]} end
elseif h[1] ~= 'queued' then
  return {'ended', h[1]}
end
-- queued, or running under an expired lease: the attempt that held it is dead.
if h[4] == '1' then
  end_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], {})
  return {'ended', 'cancelled'}
end
local attempt = tonumber(h[3]) + 1
if attempt > tonumber(ARGV[6]) then
  end_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'failed', ARGV[2],
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
"""

# KEYS: job, running zset. ARGV: id, lease_until, then field/value pairs.
# Renews the lease and writes progress. Returns 1 if a cancel was requested, 0 to go on, -1
# when the job is no longer running (reaped, or gone): the attempt must stop.
PROGRESS = """
local h = redis.call('HMGET', KEYS[1], 'status', 'cancel_requested')
if h[1] ~= 'running' then return -1 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if h[2] == '1' then return 1 end
return 0
"""

# KEYS: job, running zset, done list. ARGV: id, status, now (iso), then field/value pairs.
# Returns 1 when this call ended the job, 0 when it was not running any more.
FINISH = _END + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
local extra = {}
for i = 4, #ARGV do extra[#extra + 1] = ARGV[i] end
end_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], extra)
return 1
"""

# KEYS: job, running zset, done list. ARGV: id, now (iso).
# Returns -1 (no such job), 0 (already ended), 1 (was queued: cancelled now), 2 (running: the
# worker stops at its next step and ends the job as cancelled).
CANCEL = _END + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'queued' then
  end_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], {'cancel_requested', '1'})
  return 1
end
if status == 'running' then
  redis.call('HSET', KEYS[1], 'cancel_requested', '1')
  return 2
end
return 0
"""

# KEYS: job, running zset, done list.
# ARGV: id, now (iso), now (unix), default lease (s), redelivery allowance (s).
# Ends a running job whose lease expired one more lease (+ allowance) ago: its worker died, and
# a redelivered task had that long to restart it. Cancelled if a cancel was asked for, else
# failed with the reason. Returns 1 when it did.
REAP = _END + """
local h = redis.call('HMGET', KEYS[1], 'status', 'lease_until', 'cancel_requested', 'lease_s')
if h[1] ~= 'running' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
local grace = (tonumber(h[4]) or tonumber(ARGV[4])) + tonumber(ARGV[5])
if tonumber(h[2]) + grace > tonumber(ARGV[3]) then return 0 end
if h[3] == '1' then
  end_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'cancelled', ARGV[2], {})
else
  end_job(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 'failed', ARGV[2],
          {'error', 'worker lost: no heartbeat from the training worker'})
end
return 1
"""
