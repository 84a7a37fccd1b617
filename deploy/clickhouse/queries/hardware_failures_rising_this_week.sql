-- Terminals whose hardware failures this week (last 7 days) are at least
-- double the week before, with at least 5 this week: candidates for a
-- technician visit or a model/firmware check.
SELECT
    terminal_id,
    any(merchant_id) AS merchant_id,
    sumIf(attempts, minute >= now() - INTERVAL 7 DAY) AS this_week,
    sumIf(attempts, minute < now() - INTERVAL 7 DAY) AS last_week
FROM declinemon.terminal_minutes
WHERE cause = 'hardware' AND minute >= now() - INTERVAL 14 DAY
GROUP BY terminal_id
HAVING this_week >= 5 AND this_week >= 2 * last_week
ORDER BY this_week DESC, terminal_id
