"""Lua scripts for the model registry (worker.registry): each runs without interleaving, so
two workers seeding an empty registry at once create one version, and a version is never seen
half-written."""

from __future__ import annotations

# KEYS: seq, index, active.
# ARGV: model key prefix, only_if_empty (0/1), activate_if_none (0/1), registered_at, source,
#       size_bytes, meta JSON, checkpoint bytes, onnx bytes ('' = none yet).
# Returns the new version's name, or false when only_if_empty and a version exists.
REGISTER = """
if ARGV[2] == '1' and redis.call('ZCARD', KEYS[2]) > 0 then return false end
local n = redis.call('INCR', KEYS[1])
local version = 'v' .. n
local key = ARGV[1] .. version
redis.call('SET', key .. ':safetensors', ARGV[8])
if ARGV[9] ~= '' then redis.call('SET', key .. ':onnx', ARGV[9]) end
redis.call('HSET', key, 'version', version, 'registered_at', ARGV[4], 'source', ARGV[5],
           'size_bytes', ARGV[6], 'meta', ARGV[7])
redis.call('ZADD', KEYS[2], n, version)
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[3], version)
end
return version
"""

# KEYS: model hash, active, activations list. ARGV: version, activation entry JSON.
# Returns 1 when activated, 0 when there is no such version.
ACTIVATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], 0, 99)
return 1
"""

# KEYS: job hash, active. Returns {1 if the job exists else 0, version or ''}.
# A job keeps the version its first chunk resolved (its pinned `model`, else the active one),
# so an activation mid-job never mixes two models in one job's results.
CLAIM_FOR_JOB = """
local h = redis.call('HMGET', KEYS[1], 'status', 'model_version', 'model')
if not h[1] then return {0, ''} end
if h[2] and h[2] ~= '' then return {1, h[2]} end
local version = h[3]
if not version or version == '' then version = redis.call('GET', KEYS[2]) end
if not version then return {1, ''} end
if h[1] == 'queued' or h[1] == 'running' then
  redis.call('HSET', KEYS[1], 'model_version', version)
end
return {1, version}
"""
