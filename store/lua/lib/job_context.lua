-- Every job-state script is called with the same leading keys and arguments and the same
-- service-wide keys at the end of KEYS (store.jobs builds them):
--   KEYS: job, results, done list, pending chunks, <the script's own>, then metrics jobs,
--         metrics jobs_active, active jobs, uploading jobs, deadlines, webhook outbox, leases
--   ARGV: now (iso), now (unix), done channel, input key prefix, <the script's own>
-- A chunk's inputs are `input key prefix .. chunk` and its lease member `job id .. ':' ..
-- chunk` (store.keys.input_key, store.keys.lease_member).
local function job_context()
  local n = #KEYS - 7
  return {
    key = KEYS[1], results = KEYS[2], done = KEYS[3], pending = KEYS[4],
    now = ARGV[1], now_unix = tonumber(ARGV[2]), channel = ARGV[3], input_prefix = ARGV[4],
    jobs = KEYS[n + 1], active = KEYS[n + 2], active_jobs = KEYS[n + 3],
    uploading = KEYS[n + 4], deadlines = KEYS[n + 5], outbox = KEYS[n + 6],
    leases = KEYS[n + 7],
  }
end

local function is_active(status)
  return status == 'queued' or status == 'running'
end

-- Job counts for /metrics, changed in the same script as the state they count, so they are
-- exact: `to` entered, `from` left.
local function count_transition(j, from, to)
  if to then redis.call('HINCRBY', j.jobs, to, 1) end
  if to == 'queued' or to == 'running' then redis.call('HINCRBY', j.active, to, 1) end
  if from then redis.call('HINCRBY', j.active, from, -1) end
end

-- The job has ended (any status): it leaves the reaper's indexes, the inputs and leases of its
-- unprocessed chunks go, and a webhook it asked for enters the outbox, so it is sent even if
-- the process that ended the job dies right now. Then waiters are told: a token on its done
-- list (event streams block on it) and its record on the channel, with item 0's result when
-- `results` is given (one-item jobs: a waiting POST /v1/classify answers from the message).
local function end_job(j, status, results)
  local id = redis.call('HGET', j.key, 'id')
  redis.call('ZREM', j.active_jobs, id)
  redis.call('ZREM', j.uploading, id)
  redis.call('ZREM', j.deadlines, id)
  for _, chunk in ipairs(redis.call('SMEMBERS', j.pending)) do
    redis.call('DEL', j.input_prefix .. chunk)
    redis.call('ZREM', j.leases, id .. ':' .. chunk)
  end
  redis.call('DEL', j.pending)
  if redis.call('HGET', j.key, 'callback_url') ~= '' then
    redis.call('ZADD', j.outbox, j.now_unix, id)
  end
  local expire_at = redis.call('HGET', j.key, 'expire_at')
  redis.call('RPUSH', j.done, status)
  redis.call('EXPIREAT', j.done, expire_at)
  local message = {record = redis.call('HGETALL', j.key)}
  if results then message.result = redis.call('HGET', results, '0') or nil end
  redis.call('PUBLISH', j.channel, cjson.encode(message))
end

-- Finish the job if it is sealed (all items written) and every item is accounted for; only an
-- active job can finish, so this fires exactly once per job. Returns 1 when it finished it.
local function finish_if_complete(j)
  local h = redis.call('HMGET', j.key, 'total', 'done', 'failed', 'skipped', 'sealed', 'status')
  if h[5] ~= '1' or not is_active(h[6]) then return 0 end
  local total, failed = tonumber(h[1]), tonumber(h[3])
  if tonumber(h[2]) + failed + tonumber(h[4]) < total then return 0 end
  local status = 'succeeded'
  if total > 0 and failed == total then status = 'failed' end
  redis.call('HSET', j.key, 'status', status, 'finished_at', j.now)
  if h[6] == 'queued' then redis.call('HSET', j.key, 'started_at', j.now) end
  count_transition(j, h[6], status)
  local results = nil
  if total == 1 then results = j.results end
  end_job(j, status, results)
  return 1
end
