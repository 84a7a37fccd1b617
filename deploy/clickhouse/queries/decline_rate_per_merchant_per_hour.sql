-- Decline rate per merchant per hour, for the current hour and the 23
-- before it. Hours are those of the business time zone ('${tz}', from
-- business_timezone): business_hour is typed and shown in that
-- zone, and in a +05:30 zone an hour starts at :30 UTC.
SELECT
    toStartOfHour(minute, '${tz}') AS business_hour,
    merchant_id,
    sum(attempts) AS n_attempts,
    sumIf(attempts, cause != 'approved') AS n_declines,
    round(n_declines / n_attempts, 4) AS decline_rate,
    '${tz}' AS tz
FROM declinemon.terminal_minutes
WHERE minute >= toStartOfHour(now(), '${tz}') - INTERVAL 23 HOUR
GROUP BY business_hour, merchant_id
ORDER BY business_hour, decline_rate DESC, merchant_id
