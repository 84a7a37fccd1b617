-- Terminals with the most technical failures today (hardware, network,
-- data transmission: what a technician or the network team can fix),
-- with their merchant, at least 10 attempts. "Today" is the business day:
-- since midnight in the business time zone ('${tz}', from
-- business_timezone), whatever the server's zone; business_day
-- names it.
SELECT
    terminal_id,
    any(merchant_id) AS merchant_id,
    sum(attempts) AS n_attempts,
    sumIf(attempts, cause IN ('hardware', 'network', 'data_transmission')) AS n_failures,
    round(n_failures / n_attempts, 4) AS failure_rate,
    argMaxIf(cause, attempts, cause IN ('hardware', 'network', 'data_transmission')) AS top_cause,
    toDate(now(), '${tz}') AS business_day,
    '${tz}' AS tz
FROM declinemon.terminal_minutes
WHERE minute >= toStartOfDay(now(), '${tz}')
GROUP BY terminal_id
HAVING n_attempts >= 10 AND n_failures > 0
ORDER BY n_failures DESC, failure_rate DESC, terminal_id
LIMIT 20
