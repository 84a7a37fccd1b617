-- Decline rate per merchant per hour over the last 24 hours.
SELECT
    toStartOfHour(minute) AS hour,
    merchant_id,
    sum(attempts) AS n_attempts,
    sumIf(attempts, cause != 'approved') AS n_declines,
    round(n_declines / n_attempts, 4) AS decline_rate
FROM declinemon.terminal_minutes
WHERE minute >= now() - INTERVAL 24 HOUR
GROUP BY hour, merchant_id
ORDER BY hour, decline_rate DESC, merchant_id
