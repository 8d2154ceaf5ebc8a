-- Every refresh rewrites refresh_expires_at: an index on it doubled the cost of
-- the rotation's UPDATE. The pruner now finds idle-expired sessions by scanning
-- in primary-key order.
-- DropIndex
DROP INDEX "sessions_refresh_expires_at_idx";
