-- Shared by every celery_dlx script (prepended first when a script is registered).
-- ARGV's clock argument: a time injected by the caller (whole microseconds), or '' for
-- Redis's own clock, the one clock every worker shares.
local function clock(arg)
    if arg ~= '' then
        return tonumber(arg)
    end
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
