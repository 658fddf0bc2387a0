-- state.record: one call's outcome.  ARGV[13]: 'failure', 'success' or 'release';
-- ARGV[14]: '1' if the call was a probe.  Returns {now, mode}.
local now = clock(ARGV[1])
local outcome, probe = ARGV[13], ARGV[14] == '1'
local s = current(load(), now)
if s.m == 'half_open' then
    if probe then
        if outcome == 'failure' then
            s = trip(s, now, s.n + 1)
        else
            s.i = math.max(0, s.i - 1)
            if outcome == 'success' then
                s.k = s.k + 1
                if s.k >= P.close_after then
                    redis.call('DEL', KEYS[2])
                    s = {m = 'closed', o = 0, p = 0, n = 0, i = 0, k = 0, t = 0, c = s.c, b = s.b, d = s.d}
                end
            end
        end
    end
    save(s, now)
elseif s.m == 'closed' and outcome == 'failure' then
    redis.call('LPUSH', KEYS[2], int(now))
    redis.call('LTRIM', KEYS[2], 0, P.threshold - 1)
    local oldest = tonumber(redis.call('LINDEX', KEYS[2], P.threshold - 1))
    if oldest and oldest > now - P.window then
        s = trip(s, now, 1)
    end
    save(s, now)
elseif s.m == 'open' then
    save(s, now)
end
return {int(now), s.m}
