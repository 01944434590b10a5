-- Seeds a mailjail database (schema created by store.Open) for the
-- start-up benchmark: {{.Bans}} active bans and {{.Strikes}} stored
-- strikes from {{.Clients}} distinct addresses (every fifth one IPv6), of
-- which {{.Recent}} lie inside findtime (the last 9 minutes before
-- {{.Now}}) and the rest are spread over the 7 days the daemon keeps.
-- Placeholders are filled by bench/startup (text/template).
PRAGMA journal_mode = WAL;
PRAGMA synchronous = OFF;
PRAGMA cache_size = -262144;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {{.Bans}} - 1)
INSERT INTO bans (jail, addr, since, until, strikes, reason)
SELECT 'rspamd-ratelimit',
       '10.' || (200 + (i >> 16)) || '.' || ((i >> 8) & 255) || '.' || (i & 255),
       {{.Now}} - 60000000000 - i * 1000000,
       {{.Now}} + 3600000000000 - i * 1000000,
       10, '10 strikes in 10m (Ratelimit "ip")'
FROM n;
INSERT INTO jails (name) VALUES ('rspamd-ratelimit') ON CONFLICT(name) DO NOTHING;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {{.Strikes}} - 1)
INSERT OR IGNORE INTO strikes (jail, at, addr, n, bucket, line)
SELECT (SELECT id FROM jails WHERE name = 'rspamd-ratelimit'),
       CASE WHEN i < {{.Recent}}
            THEN {{.Now}} - (i * 540000000000) / {{.Recent}}
            ELSE {{.Now}} - 660000000000 - ((i - {{.Recent}}) * (604800000000000 - 660000000000)) / ({{.Strikes}} - {{.Recent}} + 1)
       END,
       -- the address's bytes, as strikes store them
       CASE WHEN (i % {{.Clients}}) % 5 = 0
            THEN unhex(printf('20010db8%04x%04x0000000000000001', (i % {{.Clients}}) >> 16, (i % {{.Clients}}) & 65535))
            ELSE unhex(printf('%02x%02x%02x%02x', 100, 64 + ((i % {{.Clients}}) >> 16), ((i % {{.Clients}}) >> 8) & 255, (i % {{.Clients}}) & 255))
       END,
       0, 'ip', '{{.Line}}'
FROM n;
COMMIT;
