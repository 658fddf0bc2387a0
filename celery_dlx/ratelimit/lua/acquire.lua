-- Decide calls in order, each under every limit that applies to it, in one atomic step
-- (storage.MemoryStorage.acquire, window.earliest_us).  A call is admitted only if all its
-- limits admit it, and is then recorded in all of them.  In mode 'p' a denied call changes
-- nothing; in mode 'r' it reserves the earliest slot all its limits allow, recorded in every
-- window as a call at slot + grace (the latest it may run) and in its reservations (a sorted
-- set: member the slot, score the end of its grace); mode 'c' (one call) first claims one.
-- ARGV: clock, cost, grace, a random token (makes members unique, picks when to prune), mode
--   ('p', 'r' or 'c'), for 'c' the claimed slot, then per call: its number of limits and, per limit, either
--   'f', limit, period                    a known rate (limit 0: learned from headers only), or
--   'a', limit, period, initial, floor, ceiling, decrease, recover, forget
--                                         an adaptive rate (period: the longest, for expiry).
-- KEYS: per call, in modes 'r' and 'c', its reservations; then per limit: its window (sorted
--       set of the latest time each call may run) and header budget (hash r, t), and for an
--       adaptive limit its state (hash p, n, d, u).
-- Returns {now, then per call: its wait (0: admitted; if reserved, the slot is now + wait); if
-- denied, the 0-based index of the limit with the longest wait; and the rate of each of its
-- adaptive limits as exact text}.
local now = clock(ARGV[1])
local cost = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local token = ARGV[4]
local mode = ARGV[5]
local claimed
local a = 6
if mode == 'c' then
    claimed, a = ARGV[6], 7
end
local recorded = tonumber(token) % 8  -- entries recorded by this run, from a random start
local reply = {now}

-- Records cost calls that may run until entry in a window (sorted set: score entry, member
-- unique thanks to the caller's random token and this run's count), forgets (on one call in 8,
-- from the token's random start, which bounds the set as well) the entries no call from now on
-- can share a window with, and keeps the window until its last entry ages out: PEXPIRE GT only
-- ever lengthens the time to live, and a window just created has none yet.
local function record(log, entry, expiry)
    for _ = 1, cost do
        recorded = recorded + 1
        redis.call('ZADD', log, entry, string.format('%d:%s:%d', entry, token, recorded))
        if recorded % 8 == 0 then
            redis.call('ZREMRANGEBYSCORE', log, 0, now - expiry)
        end
    end
    local ttl = math.ceil((entry + expiry - now) / 1000)
    if redis.call('PEXPIRE', log, ttl, 'GT') == 0 and redis.call('PTTL', log) == -1 then
        redis.call('PEXPIRE', log, ttl)
    end
end

-- A window celery_dlx wrote as a list before reservations, as a sorted set of the same calls.
local function upgrade(log)
    if redis.call('TYPE', log).ok == 'list' then
        local entries, ttl = redis.call('LRANGE', log, 0, -1), redis.call('PTTL', log)
        redis.call('DEL', log)
        for i, entry in ipairs(entries) do
            redis.call('ZADD', log, entry, entry .. ':' .. i)
        end
        if ttl > 0 then
            redis.call('PEXPIRE', log, ttl)
        end
    end
end

-- Entries of a window in (low, high]; a window written as a list (newest first) by celery_dlx
-- before reservations is first made a sorted set (the error says so: no TYPE on every call).
local function count(log, low, high)
    local found = redis.pcall('ZCOUNT', log, low, high)
    if type(found) == 'number' then
        return found
    end
    upgrade(log)
    return redis.call('ZCOUNT', log, low, high)
end

-- window.earliest_us: the earliest time from at when cost more calls fit the window log.
local function earliest(log, at, limit, period)
    local room = limit - cost
    for _ = 1, 32 do
        local low = string.format('(%d', at - period)
        local found = count(log, low, at + period + 2 * grace)
        if found <= room then
            return at
        end
        at = tonumber(redis.call('ZRANGEBYSCORE', log, low, '+inf', 'WITHSCORES', 'LIMIT', found - room - 1, 1)[2]) + period
    end
    return math.max(at, tonumber(redis.call('ZREVRANGE', log, room, room, 'WITHSCORES')[2]) + period)
end

-- The claim of the call whose reservations are ``reserved``: 'run' it, keep it 'early', or
-- nil (absent, late or overruled by a budget: the call is decided anew).
local function claim(reserved, budgets_allow)
    local until_ = redis.call('ZSCORE', reserved, claimed)
    if not until_ then
        return nil
    end
    if now < tonumber(claimed) then
        return 'early'
    end
    redis.call('ZREM', reserved, claimed)
    if now <= tonumber(until_) and budgets_allow then
        return 'run'
    end
    return nil
end

-- A reservation at slot in every log and in the call's reservations.
local function reserve(reserved, slot, logs, limits, expiries)
    redis.call('ZADD', reserved, slot + grace, slot)
    redis.call('PEXPIRE', reserved, math.ceil((slot + grace - now) / 1000))
    for i = 1, #logs do
        if limits[i] > 0 then
            record(logs[i], slot + grace, expiries[i])
        end
    end
end

-- The call's last reservation still to be claimed, or nil (forgetting those past their grace).
local function last_reserved(reserved)
    redis.call('ZREMRANGEBYSCORE', reserved, '-inf', string.format('(%d', now))
    return tonumber(redis.call('ZRANGE', reserved, -1, -1)[1])
end

-- Decides the call whose arguments start at ARGV[a] and keys at KEYS[k]; returns the next a, k.
local function decide(a, k)
    local count = tonumber(ARGV[a])
    a = a + 1
    local reserved = false
    if mode ~= 'p' and count > 0 then
        reserved, k = KEYS[k], k + 1
    end
    local logs, limits, expiries, periods, budgets, rates = {}, {}, {}, {}, {}, {}
    local at, blocker, budgets_allow = now, -1, true
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
        periods[i] = period
        local mine = now
        if limit > 0 then
            mine = earliest(KEYS[k], now, limit, period)
        end
        local reset = tonumber(redis.call('HGET', KEYS[k + 1], 't'))  -- one field: most limits have none
        if reset and reset > now then
            budgets[i] = KEYS[k + 1]
            if tonumber(redis.call('HGET', KEYS[k + 1], 'r')) < cost then
                mine, budgets_allow = math.max(mine, reset), false
            end
        end
        if mine > at then
            at, blocker = mine, i - 1
        end
        if adaptive then
            a, k = a + 9, k + 3
        else
            a, k = a + 3, k + 2
        end
    end
    -- Every limit must fit at the same time: from at, the earliest time they all do.
    local function settle(from)
        local moved = true
        while moved do
            moved = false
            for i = 1, count do
                if limits[i] > 0 then
                    local mine = earliest(logs[i], from, limits[i], periods[i])
                    if mine > from then
                        from, blocker, moved = mine, i - 1, true
                    end
                end
            end
        end
        return from
    end
    if at > now then
        at = settle(at)
    end
    local wait = at - now
    local claim_of = mode == 'c' and reserved and claim(reserved, budgets_allow)
    if claim_of == 'early' then
        wait, blocker = tonumber(claimed) - now, 0
    elseif claim_of == 'run' or wait == 0 then
        for i = 1, count do
            if claim_of ~= 'run' and limits[i] > 0 then
                record(logs[i], now, expiries[i])
            end
            if budgets[i] then
                redis.call('HINCRBY', budgets[i], 'r', -cost)
            end
        end
        wait = 0
    elseif reserved then
        -- Reservations of a call's first limit are paced at its rate (and so unique): calls
        -- denied together come back one after another, not as a burst the workers must queue.
        local last = last_reserved(reserved)
        if last then
            local spacing = 1
            if limits[1] > 0 then
                spacing = math.max(1, math.floor(cost * periods[1] / limits[1]))
            end
            if last + spacing > at then
                at = settle(last + spacing)
            end
        end
        reserve(reserved, at, logs, limits, expiries)
        wait = at - now
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
