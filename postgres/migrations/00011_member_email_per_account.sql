-- Member emails are unique within an account, not across the deployment: a
-- global constraint told an account's owner, inviting an email, that it was
-- a member elsewhere.

-- +goose Up
ALTER TABLE members DROP CONSTRAINT members_email_key;
ALTER TABLE members ADD CONSTRAINT members_account_id_email_key UNIQUE (account_id, email);
-- Sign-in looks an email up in every account.
CREATE INDEX members_email ON members (email, id);

-- +goose Down
-- Fails if an email has become a member of several accounts.
DROP INDEX members_email;
ALTER TABLE members DROP CONSTRAINT members_account_id_email_key;
ALTER TABLE members ADD CONSTRAINT members_email_key UNIQUE (email);
