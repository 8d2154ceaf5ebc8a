-- Every refresh rewrites refresh_expires_at: an index on it ruled out HOT
-- updates, so each rotation wrote a new entry into every index of sessions.
-- The pruner now finds idle-expired sessions by scanning in primary-key order.
-- Dropped without blocking reads and writes of a live sessions table. As
-- CONCURRENTLY cannot run inside a transaction block, this migration holds
-- this one statement.
DROP INDEX CONCURRENTLY IF EXISTS "sessions_refresh_expires_at_idx";
