-- Terminals whose hardware failures this week are at least double the
-- week before, with at least 5 this week: candidates for a technician
-- visit or a model/firmware check. This week is the last 7 business days,
-- today included (from week_from); the week before is the 7 days before
-- that. Days are those of the business time zone ('${tz}', from
-- business_timezone).
WITH toDate(now(), '${tz}') AS today
SELECT
    terminal_id,
    any(merchant_id) AS merchant_id,
    sumIf(attempts, toDate(minute, '${tz}') > today - 7) AS this_week,
    sumIf(attempts, toDate(minute, '${tz}') <= today - 7) AS last_week,
    today - 6 AS week_from,
    '${tz}' AS tz
FROM declinemon.terminal_minutes
WHERE cause = 'hardware' AND minute >= toDateTime(today - 13, '${tz}')
GROUP BY terminal_id
HAVING this_week >= 5 AND this_week >= 2 * last_week
ORDER BY this_week DESC, terminal_id
