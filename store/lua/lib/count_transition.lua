-- Job counts for /metrics, changed in the same script as the state they count, so they are
-- exact. `counts` = {jobs = <hash: state -> jobs that entered it>, active = <hash: queued and
-- running -> jobs in that state now>}: `to` entered, `from` left.
local function count_transition(counts, from, to)
  if to then redis.call('HINCRBY', counts.jobs, to, 1) end
  if to == 'queued' or to == 'running' then redis.call('HINCRBY', counts.active, to, 1) end
  if from then redis.call('HINCRBY', counts.active, from, -1) end
end
