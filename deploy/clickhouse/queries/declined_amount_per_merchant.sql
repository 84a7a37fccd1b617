-- Impact per merchant over the last 24 hours: declined attempts and their
-- amount in minor units (revenue at risk), largest first. A rolling
-- window: the same in every time zone.
SELECT
    merchant_id,
    sum(attempts) AS n_attempts,
    sumIf(attempts, cause != 'approved') AS n_declines,
    sumIf(amount_minor, cause != 'approved') AS declined_amount_minor,
    round(n_declines / n_attempts, 4) AS decline_rate
FROM declinemon.terminal_minutes
WHERE minute >= now() - INTERVAL 24 HOUR
GROUP BY merchant_id
HAVING n_declines > 0
ORDER BY declined_amount_minor DESC, merchant_id
