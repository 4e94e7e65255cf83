-- sample.sql — test data for the lab (tests/lab) and for trying things out.
--
-- Passwords (Dovecot SHA512-CRYPT, made once with
-- `openssl passwd -6 -salt SALT PASSWORD`):
--   alice@example.com  alice-secret
--   bob@example.com    bob-secret
--   carol@example.net  carol-secret
-- Aliases: all@example.com -> alice, bob; postmaster@example.com -> alice;
-- team@example.net -> all@example.com (a chain through another domain).
--
-- Use on an empty database only: mariadb mailserver < sql/sample.sql

INSERT INTO virtual_domains (id, name) VALUES
    (1, 'example.com'),
    (2, 'example.net');

INSERT INTO virtual_users (id, domain_id, password, email) VALUES
    (1, 1, '{SHA512-CRYPT}$6$sockmailalicesal$ppQhtZnpWAQL3iWmjalvzZsjvgwCXUmLVHukJcXXbMfDo4Dz2wtURdL6wURVBnBsQSxNkZ1q6vvCt.ZrshG581', 'alice@example.com'),
    (2, 1, '{SHA512-CRYPT}$6$sockmailbobsaltx$77foc1LXhjGU/wfQi27owRgmifAr4BGBgLwU/U274PUU6vgVV55S1hTxIbS8/L51Y.Z4Pu9ERbsQfhkdiZHyn1', 'bob@example.com'),
    (3, 2, '{SHA512-CRYPT}$6$sockmailcarolsal$dkYuAb8mLmoduQS83TRAqfEZP8bOUemQS4tjlq2JHE1Nx6QK5x1yVUJmDVt9Z/tEXNhlUho.tiBpRQQXgGxTp0', 'carol@example.net');

INSERT INTO virtual_aliases (id, domain_id, source, destination) VALUES
    (1, 1, 'all@example.com', 'alice@example.com'),
    (2, 1, 'all@example.com', 'bob@example.com'),
    (3, 1, 'postmaster@example.com', 'alice@example.com'),
    (4, 2, 'team@example.net', 'all@example.com');
