-- Decide calls in order, each under every limit that applies to it, in one atomic step
-- (storage.MemoryStorage.acquire, window.earliest_us).  A call is admitted only if all its
-- limits admit it, and is then recorded in all of them.  In mode 'p' a denied call changes
-- nothing; in mode 'r' it reserves the earliest slot all its limits allow, recorded in every
-- log as a call at slot + grace (the latest it may run) and in its reservations (a sorted set:
-- member the slot, score the end of its grace); mode 'c' (one call) first claims a reservation.
-- ARGV: clock, cost, grace, mode ('p', 'r' or 'c'), for 'c' the claimed slot and when it was
--   made, then per call: its number of limits and, per limit, either
--   'f', limit, period                    a known rate (limit 0: learned from headers only), or
--   'a', limit, period, initial, floor, ceiling, decrease, recover, forget
--                                         an adaptive rate (period: the longest, for expiry).
-- KEYS: per call, in modes 'r' and 'c', its reservations; then per limit: its window log (list,
--       newest first) and header budget (hash r, t), and for an adaptive limit its state
--       (hash p, n, d, u).
-- Returns {now, then per call: its wait (0: admitted; if reserved, the slot is now + wait); if
-- denied, the 0-based index of the limit with the longest wait; and the rate of each of its
-- adaptive limits as exact text}.
local now = clock(ARGV[1])
local cost = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local mode = ARGV[4]
local claimed, made
local a = 5
if mode == 'c' then
    claimed, made, a = ARGV[5], tonumber(ARGV[6]), 7
end
local reply = {now}

-- Records cost calls at entry in a log, keeping the newest limit entries until they expire.
local function record(log, limit, entry, expiry)
    for _ = 1, cost do
        redis.call('LPUSH', log, entry)
    end
    redis.call('LTRIM', log, 0, limit - 1)
    redis.call('PEXPIRE', log, math.ceil((entry + expiry - now) / 1000))
end

-- The claim of the call whose reservations are ``reserved``: 'run' it, keep it 'early', or
-- nil (absent, late or voided: the call is decided anew).
local function claim(reserved, budgets_allow, decreased)
    local until_ = redis.call('ZSCORE', reserved, claimed)
    if not until_ then
        return nil
    end
    if now < tonumber(claimed) then
        return 'early'
    end
    redis.call('ZREM', reserved, claimed)
    if now <= tonumber(until_) and budgets_allow and decreased <= made then
        return 'run'
    end
    return nil
end

-- A reservation at slot (made unique: after the last one) in every log; returns the slot.
local function reserve(reserved, slot, logs, limits, expiries)
    redis.call('ZREMRANGEBYSCORE', reserved, '-inf', '(' .. now)
    local last = redis.call('ZRANGE', reserved, -1, -1)[1]
    if last and tonumber(last) >= slot then
        slot = tonumber(last) + 1
    end
    redis.call('ZADD', reserved, slot + grace, slot)
    redis.call('PEXPIRE', reserved, math.ceil((slot + grace - now) / 1000))
    for i = 1, #logs do
        if limits[i] > 0 then
            record(logs[i], limits[i], slot + grace, expiries[i])
        end
    end
    return slot
end

-- Decides the call whose arguments start at ARGV[a] and keys at KEYS[k]; returns the next a, k.
local function decide(a, k)
    local count = tonumber(ARGV[a])
    a = a + 1
    local reserved = false
    if mode ~= 'p' and count > 0 then
        reserved, k = KEYS[k], k + 1
    end
    local logs, limits, expiries, newest, budgets, rates = {}, {}, {}, {}, {}, {}
    local earliest, blocker, budgets_allow, decreased = now, -1, true, 0
    for i = 1, count do
        local adaptive = ARGV[a] == 'a'
        local limit, period = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
        logs[i], limits[i], expiries[i], newest[i], budgets[i] = KEYS[k], limit, period, 0, false
        if adaptive then
            local initial, floor, ceiling = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
            local decrease, recover, forget = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
            local peak, successes, down = adaptive_state(KEYS[k + 2], now, initial, decrease, recover, forget)
            local rate = adaptive_rate(peak, successes, floor, ceiling, decrease, recover)
            rates[#rates + 1] = string.format('%.17g', rate)
            period = math.floor(limit * 1000000 / rate + 0.5)
            decreased = math.max(decreased, down)
        end
        local at = 0
        if limit > 0 then
            local first = redis.call('LINDEX', KEYS[k], 0)
            if first then
                newest[i] = tonumber(first)
                at = newest[i] - grace
                local entry = first
                if limit > cost then
                    entry = redis.call('LINDEX', KEYS[k], limit - cost)
                end
                if entry then
                    at = math.max(at, tonumber(entry) + period)
                end
            end
        end
        local reset = tonumber(redis.call('HGET', KEYS[k + 1], 't'))  -- one field: most limits have none
        if reset and reset > now then
            budgets[i] = KEYS[k + 1]
            if tonumber(redis.call('HGET', KEYS[k + 1], 'r')) < cost then
                at, budgets_allow = math.max(at, reset), false
            end
        end
        if at > earliest then
            earliest, blocker = at, i - 1
        end
        if adaptive then
            a, k = a + 9, k + 3
        else
            a, k = a + 3, k + 2
        end
    end
    local wait = earliest - now
    local claim_of = mode == 'c' and reserved and claim(reserved, budgets_allow, decreased)
    if claim_of == 'early' then
        wait, blocker = tonumber(claimed) - now, 0
    elseif claim_of == 'run' or wait == 0 then
        for i = 1, count do
            if claim_of ~= 'run' and limits[i] > 0 then
                record(logs[i], limits[i], math.max(now, newest[i]), expiries[i])
            end
            if budgets[i] then
                redis.call('HINCRBY', budgets[i], 'r', -cost)
            end
        end
        wait = 0
    elseif reserved then
        wait = reserve(reserved, earliest, logs, limits, expiries) - now
    end
    reply[#reply + 1] = wait
    if wait > 0 then
        reply[#reply + 1] = blocker
    end
    for _, rate in ipairs(rates) do
        reply[#reply + 1] = rate
    end
    return a, k
end

local k = 1
while a <= #ARGV do
    a, k = decide(a, k)
end
return reply
