-- Minute-by-minute timeline of issuers failing with maintenance or network
-- causes (issuer down, switch unavailable, response too late) over the last
-- 24 hours; minutes with at least 20% such failures and 5 attempts.
-- business_minute is typed and shown in the business time zone ('${tz}',
-- from business_timezone); storage stays UTC.
SELECT
    toTimeZone(minute, '${tz}') AS business_minute,
    issuer_id,
    sum(attempts) AS n_attempts,
    sumIf(attempts, cause IN ('maintenance', 'network')) AS n_failures,
    round(n_failures / n_attempts, 4) AS failure_rate,
    '${tz}' AS tz
FROM declinemon.scope_minutes
WHERE minute >= now() - INTERVAL 24 HOUR AND issuer_id != ''
GROUP BY minute, issuer_id
HAVING n_attempts >= 5 AND failure_rate >= 0.2
ORDER BY minute, issuer_id
