-- AlterTable
ALTER TABLE "users" ADD COLUMN "tokens_revoked_at" DATETIME;

-- AlterTable
ALTER TABLE "signing_keys" ADD COLUMN "activates_at" DATETIME;

-- CreateIndex
CREATE INDEX "users_tokens_revoked_at_idx" ON "users"("tokens_revoked_at");

-- CreateIndex
CREATE INDEX "sessions_revoked_at_idx" ON "sessions"("revoked_at");
