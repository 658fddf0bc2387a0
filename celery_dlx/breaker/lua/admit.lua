-- state.admit: decide one task.  ARGV[13]: u in [0, 1), the task's place inside its slot.
-- Returns {now, action, due, mode}.
local now = clock(ARGV[1])
local u = tonumber(ARGV[13])
local s = current(load(), now)
local action, due = 'call', 0
if s.m == 'half_open' and s.i < P.probes then
    s.i, s.t = s.i + 1, now
    action = 'probe'
elseif s.m ~= 'closed' then
    local base = s.p
    if s.m == 'half_open' then
        base = now + P.probe_wait
    end
    -- spread.slot
    local start = math.max(s.c, base)
    if start > s.c then
        s.b = start
    end
    due = start + math.floor(u * P.period)
    s.c, s.d = start + P.period, s.d + 1
    action = 'defer'
end
if action ~= 'call' or s.m ~= 'closed' then
    save(s, now)
end
return {int(now), action, int(due), s.m}
