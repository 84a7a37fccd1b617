-- Decline cause mix per region over the last 24 hours, with the share of
-- each cause among the region's declines and distinct terminals affected.
-- A rolling window: the same in every time zone.
SELECT
    region,
    cause,
    sum(attempts) AS n_declines,
    round(n_declines / sum(n_declines) OVER (PARTITION BY region), 4) AS share,
    uniqMerge(terminals) AS terminals
FROM declinemon.scope_minutes
WHERE minute >= now() - INTERVAL 24 HOUR AND cause != 'approved'
GROUP BY region, cause
ORDER BY region, n_declines DESC, cause
