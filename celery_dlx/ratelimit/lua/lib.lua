-- Shared by every celery_dlx rate-limit script (prepended when the script is registered).
-- Times are whole microseconds. The adaptive functions are celery_dlx.ratelimit.adaptive's,
-- with the same expressions in the same order, so Redis and memory storage agree to the bit.

-- AdaptiveRate.current: the stored state, or the start if there is none or it is stale.
local function adaptive_state(key, now, initial, decrease, recover, forget)
    local s = redis.call('HMGET', key, 'p', 'n', 'd', 'u')
    if s[1] and now - tonumber(s[4]) < forget then
        return tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
    end
    return initial / (2.0 - decrease), 2 * recover, 0
end

-- AdaptiveRate.rate
local function adaptive_rate(peak, successes, floor, ceiling, decrease, recover)
    local x = (successes - recover) / recover
    local rate = peak * (1.0 + (1.0 - decrease) * x * x * x)
    return math.min(ceiling, math.max(floor, rate))
end
