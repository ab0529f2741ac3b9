-- Every job-state script is called with the same leading keys and arguments and the same
-- service-wide keys at the end of KEYS (store.jobs builds them):
--   KEYS: job, results, done list, pending chunks, <the script's own>, then metrics jobs,
--         metrics jobs_active, active jobs, uploading jobs, deadlines, webhook outbox, leases,
--         usage
--   ARGV: now (iso), now (unix), done channel, input key prefix, <the script's own>
-- A chunk's inputs are `input key prefix .. chunk` and its lease member `job id .. ':' ..
-- chunk` (store.keys.input_key, store.keys.lease_member); a tenant's usage counters are
-- `tenant .. '|' .. name` in the usage hash (store.keys.usage_field).
local function job_context()
  local n = #KEYS - 8
  return {
    key = KEYS[1], results = KEYS[2], done = KEYS[3], pending = KEYS[4],
    now = ARGV[1], now_unix = tonumber(ARGV[2]), channel = ARGV[3], input_prefix = ARGV[4],
    jobs = KEYS[n + 1], active = KEYS[n + 2], active_jobs = KEYS[n + 3],
    uploading = KEYS[n + 4], deadlines = KEYS[n + 5], outbox = KEYS[n + 6],
    leases = KEYS[n + 7], usage = KEYS[n + 8],
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

-- Usage (admission control and quotas, api.quotas): every byte of input and every item a job
-- wrote is counted when written (everyone's input bytes, and the tenant's) and uncounted here,
-- in the script that removes it, so the counters stay exact. The job's `inbytes:{c}` holds
-- chunk c's bytes still stored, its `queued` its items written and not yet done.
local function drop_inputs(j, chunk)
  redis.call('DEL', j.input_prefix .. chunk)
  local bytes = redis.call('HGET', j.key, 'inbytes:' .. chunk)
  if bytes then
    local tenant = redis.call('HGET', j.key, 'tenant')
    redis.call('HINCRBY', j.usage, 'input_bytes', -tonumber(bytes))
    redis.call('HINCRBY', j.usage, tenant .. '|input_bytes', -tonumber(bytes))
    redis.call('HDEL', j.key, 'inbytes:' .. chunk)
  end
end

local function items_done(j, n)
  local tenant = redis.call('HGET', j.key, 'tenant')
  redis.call('HINCRBY', j.key, 'queued', -n)
  redis.call('HINCRBY', j.usage, tenant .. '|queued_items', -n)
end

-- An active job leaves the counters: its unprocessed chunks' inputs, its items not done, and
-- (a bulk job) its place among the tenant's active jobs. Returns its id.
local function release_job(j)
  local h = redis.call('HMGET', j.key, 'id', 'kind', 'queued', 'tenant')
  for _, chunk in ipairs(redis.call('SMEMBERS', j.pending)) do
    drop_inputs(j, chunk)
    redis.call('ZREM', j.leases, h[1] .. ':' .. chunk)
  end
  local queued = tonumber(h[3] or '0') or 0
  if queued ~= 0 then items_done(j, queued) end
  if h[2] == 'bulk' then redis.call('HINCRBY', j.usage, h[4] .. '|active_jobs', -1) end
  return h[1]
end

-- The job has ended (any status): it leaves the reaper's indexes and the usage counters, the
-- inputs and leases of its unprocessed chunks go, and a webhook it asked for enters the outbox,
-- so it is sent even if the process that ended the job dies right now. Then waiters are told:
-- a token on its done list (event streams block on it) and its record on the channel, with
-- item 0's result when `results` is given (one-item jobs: a waiting POST /v1/classify answers
-- from the message).
local function end_job(j, status, results)
  local id = release_job(j)
  redis.call('ZREM', j.active_jobs, id)
  redis.call('ZREM', j.uploading, id)
  redis.call('ZREM', j.deadlines, id)
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
