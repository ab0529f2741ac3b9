"""Lua scripts for the job store: every state change that must be atomic happens in one script.

Redis runs a script without interleaving other commands, so "write the item once, count it
once, finish the job once" holds however many workers run the same chunk at the same time.
Timestamps come in as arguments (scripts stay deterministic); every key a script creates
expires with its job, at the job's `expire_at`.
"""

from __future__ import annotations

from worker.jobkeys import DONE_CHANNEL
from worker.metrics import JOBS_ACTIVE_KEY, JOBS_KEY

# Job counts for /metrics (worker.metrics), changed in the same script as the state they count,
# so they are exact. `to` entered (+1 in JOBS_KEY; +1 in JOBS_ACTIVE_KEY if queued/running);
# `from` left (-1 in JOBS_ACTIVE_KEY). These keys are not passed in KEYS: fine on the single
# Redis the service uses (not Redis Cluster).
_COUNT = f"""
local function count_transition(from, to)
  if to then redis.call('HINCRBY', '{JOBS_KEY}', to, 1) end
  if to == 'queued' or to == 'running' then redis.call('HINCRBY', '{JOBS_ACTIVE_KEY}', to, 1) end
  if from then redis.call('HINCRBY', '{JOBS_ACTIVE_KEY}', from, -1) end
end
"""

# Announce an ended job: a token on its `done` list (event streams block on it with a
# non-consuming BLMOVE), and on DONE_CHANNEL its record key, its record and, when a results
# hash is passed (one-item jobs), item 0's result: a waiting POST /v1/classify answers from
# the message alone (api.completions), without reading the job back.
_ANNOUNCE = f"""
local function announce(job, done_list, status, expire_at, results)
  redis.call('RPUSH', done_list, status)
  redis.call('EXPIREAT', done_list, expire_at)
  local message = {{key = job, record = redis.call('HGETALL', job)}}
  if results then message.result = redis.call('HGET', results, '0') or nil end
  redis.call('PUBLISH', '{DONE_CHANNEL}', cjson.encode(message))
end
"""

# Finish the job if it is sealed (all items written) and every item is accounted for; only a
# job still queued or running can finish, so this fires exactly once per job.
# Returns 1 when this call finished the job.
_FINISH = _COUNT + _ANNOUNCE + """
local function maybe_finish(job, done_list, now, results)
  local h = redis.call('HMGET', job, 'total', 'done', 'failed', 'skipped', 'sealed', 'status',
                       'expire_at')
  if h[5] ~= '1' or (h[6] ~= 'queued' and h[6] ~= 'running') then return 0 end
  local total, failed = tonumber(h[1]), tonumber(h[3])
  if tonumber(h[2]) + failed + tonumber(h[4]) < total then return 0 end
  local status = 'succeeded'
  if total > 0 and failed == total then status = 'failed' end
  redis.call('HSET', job, 'status', status, 'finished_at', now)
  if h[6] == 'queued' then redis.call('HSET', job, 'started_at', now) end
  count_transition(h[6], status)
  announce(job, done_list, status, h[7], total == 1 and results or nil)
  return 1
end
"""

# KEYS: job, results, input (chunk inputs to drop; may be absent), done list
# ARGV: now, then triples (index, counter: done|failed|skipped, result JSON)
# Returns -1 when the job is gone (expired/deleted), else 1 if this call finished the job.
RECORD_RESULTS = _FINISH + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local added = {done = 0, failed = 0, skipped = 0}
for i = 2, #ARGV, 3 do
  -- HSETNX: an item is written and counted only the first time (a re-run chunk is a no-op)
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 2]) == 1 then
    added[ARGV[i + 1]] = added[ARGV[i + 1]] + 1
  end
end
for counter, n in pairs(added) do
  if n > 0 then redis.call('HINCRBY', KEYS[1], counter, n) end
end
redis.call('EXPIREAT', KEYS[2], redis.call('HGET', KEYS[1], 'expire_at'))
if KEYS[3] ~= '' then redis.call('DEL', KEYS[3]) end
return maybe_finish(KEYS[1], KEYS[4], ARGV[1], KEYS[2])
"""

# KEYS: job. ARGV: now, model version, attempts field ('' = do not count).
# Marks a queued job running, counts this attempt at a chunk (a chunk that keeps killing its
# worker is given up on) and returns {attempt, flat HGETALL}, or {} when the job is gone.
START_CHUNK = _COUNT + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {} end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[1])
  count_transition('queued', 'running')
end
if status == 'queued' or status == 'running' then
  redis.call('HSET', KEYS[1], 'model_version', ARGV[2])
end
local attempt = 1
if ARGV[3] ~= '' then attempt = redis.call('HINCRBY', KEYS[1], ARGV[3], 1) end
return {attempt, redis.call('HGETALL', KEYS[1])}
"""

# KEYS: job, done list. ARGV: total, chunks, now.
# All items are written: record the totals, then finish at once if the workers already have.
SEAL = _FINISH + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'chunks', ARGV[2], 'sealed', '1')
return maybe_finish(KEYS[1], KEYS[2], ARGV[3])
"""

# KEYS: job, done list. ARGV: now.
# Returns -1 (no such job), 0 (already finished: nothing to cancel) or 1 (cancelled now).
CANCEL = _COUNT + _ANNOUNCE + """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'queued' and status ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'cancel_requested', '1', 'finished_at', ARGV[1])
count_transition(status, 'cancelled')
announce(KEYS[1], KEYS[2], 'cancelled', redis.call('HGET', KEYS[1], 'expire_at'))
return 1
"""

# KEYS: the job's keys (its record first), then the tenant's job index. ARGV: job id.
# Removes a job whose upload failed half-way; uncounts it if it was counted as active.
DISCARD = _COUNT + """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' or status == 'running' then count_transition(status, 'discarded') end
redis.call('DEL', unpack(KEYS, 1, #KEYS - 1))
redis.call('ZREM', KEYS[#KEYS], ARGV[1])
return 1
"""

# KEYS: job. ARGV: field, value. HSET that never recreates an expired job (a key without TTL).
SET_FIELD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
"""
