-- Shared by the breaker scripts (prepended when a script is registered): celery_dlx.breaker.state
-- in Lua, the same rules in the same order, so Redis and memory storage decide identically.
-- Times are whole microseconds.  KEYS[1]: the state hash, KEYS[2]: the failure log (newest first).
-- ARGV[1]: clock ('' for Redis's TIME); ARGV[2..12]: the policy (state.Policy.arguments).

local function int(x)
    return string.format('%d', x)
end

local P = {
    threshold = tonumber(ARGV[2]), window = tonumber(ARGV[3]), open = tonumber(ARGV[4]),
    max_open = tonumber(ARGV[5]), backoff = tonumber(ARGV[6]), probes = tonumber(ARGV[7]),
    close_after = tonumber(ARGV[8]), probe_timeout = tonumber(ARGV[9]), probe_wait = tonumber(ARGV[10]),
    period = tonumber(ARGV[11]), forget = tonumber(ARGV[12]),
}

local FIELDS = {'m', 'o', 'p', 'n', 'i', 'k', 't', 'c', 'b', 'd'}

local function load()
    local v = redis.call('HMGET', KEYS[1], unpack(FIELDS))
    return {
        m = v[1] or 'closed', o = tonumber(v[2]) or 0, p = tonumber(v[3]) or 0, n = tonumber(v[4]) or 0,
        i = tonumber(v[5]) or 0, k = tonumber(v[6]) or 0, t = tonumber(v[7]) or 0, c = tonumber(v[8]) or 0,
        b = tonumber(v[9]) or 0, d = tonumber(v[10]) or 0,
    }
end

local function save(s, now)
    if s.m == 'closed' and s.o == 0 and s.p == 0 and s.n == 0 and s.i == 0 and s.k == 0 and s.t == 0
        and s.c == 0 and s.b == 0 and s.d == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
        redis.call('DEL', KEYS[1])
        return
    end
    redis.call('HSET', KEYS[1], 'm', s.m, 'o', int(s.o), 'p', int(s.p), 'n', int(s.n), 'i', int(s.i),
        'k', int(s.k), 't', int(s.t), 'c', int(s.c), 'b', int(s.b), 'd', int(s.d))
    -- Relative expiry, so a state kept on an injected clock lives as long as on Redis's own.
    local ttl = int(math.ceil((math.max(now, s.p, s.c) + P.forget - now) / 1000))
    redis.call('PEXPIRE', KEYS[1], ttl)
    if redis.call('EXISTS', KEYS[2]) == 1 then
        redis.call('PEXPIRE', KEYS[2], ttl)
    end
end

-- state.open_period_us
local function open_period(opens)
    local period = P.open
    for _ = 2, opens do
        period = math.min(P.max_open, period * P.backoff)
    end
    return math.floor(math.min(P.max_open, period))
end

-- state.current
local function current(s, now)
    if s.m == 'open' and now >= s.p then
        s.m, s.i, s.k, s.t = 'half_open', 0, 0, 0
    elseif s.m == 'half_open' and s.i >= P.probes and now - s.t >= P.probe_timeout then
        s.i = 0
    end
    return s
end

-- state.trip
local function trip(s, now, opens)
    redis.call('DEL', KEYS[2])
    return {m = 'open', o = now, p = now + open_period(opens), n = opens, i = 0, k = 0, t = 0, c = s.c, b = s.b,
        d = s.d}
end
