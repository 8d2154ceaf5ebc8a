-- Built without blocking writes to a live sessions table. CONCURRENTLY cannot
-- run inside a transaction block, so this migration holds this one statement.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "sessions_refresh_expires_at_idx" ON "sessions"("refresh_expires_at");
