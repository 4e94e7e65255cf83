-- grants.sql — privileges of sockmail's three database accounts.
--
--   sockmail_auth    auth-checker: reads users including password hashes
--   sockmail_lookup  lmtp/smtp handlers: domains, aliases, and of
--                    virtual_users only id, domain_id, email — no privilege
--                    at all on the password column (DESIGN.md "Who may read what")
--   sockmail_admin   the `sockmail` admin CLI: reads and writes the tables
--
-- The accounts connect over the local unix socket ('...'@'localhost'). This
-- file holds no passwords: create the accounts first, each with its own
-- password, then apply the grants to the mail database (tables are named
-- without a database, so the database given on the command line is used):
--
--   CREATE USER 'sockmail_lookup'@'localhost' IDENTIFIED BY '...';
--   CREATE USER 'sockmail_auth'@'localhost'   IDENTIFIED BY '...';
--   CREATE USER 'sockmail_admin'@'localhost'  IDENTIFIED BY '...';
--   mariadb mailserver < sql/grants.sql
--
-- and put each password in a file named by sockmail.conf's
-- lookup_password_file / auth_password_file / admin_password_file (mode
-- 0600, owned by the program's user), or pass it with systemd's
-- LoadCredential=. tests/lab does exactly this with random passwords.
-- Applying the file again is harmless (GRANT only adds).

GRANT SELECT ON `virtual_domains` TO 'sockmail_lookup'@'localhost';
GRANT SELECT ON `virtual_aliases` TO 'sockmail_lookup'@'localhost';
GRANT SELECT (`id`, `domain_id`, `email`) ON `virtual_users` TO 'sockmail_lookup'@'localhost';

GRANT SELECT ON `virtual_domains` TO 'sockmail_auth'@'localhost';
GRANT SELECT ON `virtual_users`   TO 'sockmail_auth'@'localhost';
GRANT SELECT ON `virtual_aliases` TO 'sockmail_auth'@'localhost';

GRANT SELECT, INSERT, UPDATE, DELETE ON `virtual_domains` TO 'sockmail_admin'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE ON `virtual_users`   TO 'sockmail_admin'@'localhost';
GRANT SELECT, INSERT, UPDATE, DELETE ON `virtual_aliases` TO 'sockmail_admin'@'localhost';
