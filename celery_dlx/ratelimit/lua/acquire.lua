-- Decide calls in order, each under every limit that applies to it, in one atomic step
-- (storage.MemoryStorage.acquire).  A call is admitted only if all its limits admit it, and is
-- then recorded in all of them; a denied call changes nothing.
-- ARGV: clock, cost, then per call: its number of limits and, per limit, either
--   'f', limit, period                    a known rate (limit 0: learned from headers only), or
--   'a', limit, period, initial, floor, ceiling, decrease, recover, forget
--                                         an adaptive rate (period: the longest, for expiry).
-- KEYS: per call, per limit: its window log (list, newest first) and header budget (hash r, t),
--       and for an adaptive limit its state (hash p, n, d, u).
-- Returns {now, then per call: its wait (0: admitted); if denied, the 0-based index of the limit
-- with the longest wait; and the rate of each of its adaptive limits as exact text}.
local now = clock(ARGV[1])
local cost = tonumber(ARGV[2])
local reply = {now}

-- Decides the call whose arguments start at ARGV[a] and keys at KEYS[k]; returns the next a, k.
local function decide(a, k)
    local count = tonumber(ARGV[a])
    a = a + 1
    local logs, limits, expiries, budgets, rates = {}, {}, {}, {}, {}
    local longest, blocker = 0, -1
    for i = 1, count do
        local adaptive = ARGV[a] == 'a'
        local limit, period = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
        logs[i], limits[i], expiries[i], budgets[i] = KEYS[k], limit, period, false
        if adaptive then
            local initial, floor, ceiling = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
            local decrease, recover, forget = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
            local peak, successes = adaptive_state(KEYS[k + 2], now, initial, decrease, recover, forget)
            local rate = adaptive_rate(peak, successes, floor, ceiling, decrease, recover)
            rates[#rates + 1] = string.format('%.17g', rate)
            period = math.floor(limit * 1000000 / rate + 0.5)
        end
        local wait = 0
        if limit > 0 then
            local entry = redis.call('LINDEX', KEYS[k], limit - cost)
            if entry then
                wait = math.max(0, tonumber(entry) + period - now)
            end
        end
        local reset = tonumber(redis.call('HGET', KEYS[k + 1], 't'))  -- one field: most limits have none
        if reset and reset > now then
            budgets[i] = KEYS[k + 1]
            if tonumber(redis.call('HGET', KEYS[k + 1], 'r')) < cost then
                wait = math.max(wait, reset - now)
            end
        end
        if wait > longest then
            longest, blocker = wait, i - 1
        end
        if adaptive then
            a, k = a + 9, k + 3
        else
            a, k = a + 3, k + 2
        end
    end
    if longest == 0 then
        for i = 1, count do
            if limits[i] > 0 then
                for _ = 1, cost do
                    redis.call('LPUSH', logs[i], now)
                end
                redis.call('LTRIM', logs[i], 0, limits[i] - 1)
                redis.call('PEXPIRE', logs[i], math.ceil(expiries[i] / 1000))
            end
            if budgets[i] then
                redis.call('HINCRBY', budgets[i], 'r', -cost)
            end
        end
    end
    reply[#reply + 1] = longest
    if longest > 0 then
        reply[#reply + 1] = blocker
    end
    for _, rate in ipairs(rates) do
        reply[#reply + 1] = rate
    end
    return a, k
end

local a, k = 3, 1
while a <= #ARGV do
    a, k = decide(a, k)
end
return reply
