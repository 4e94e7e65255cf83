-- schema.sql — the three tables of the classic Postfix + Dovecot + MySQL
-- virtual-mailbox setup, as sockmail reads them.
--
-- Compatibility: the tables and their columns (names, types, NOT NULL,
-- foreign keys with ON DELETE CASCADE) are exactly those of the well-known
-- tutorial, so a database built for Postfix/Dovecot works with sockmail
-- unchanged and stays usable by Postfix/Dovecot. Every statement here is
-- CREATE ... IF NOT EXISTS: applying this file to an existing database adds
-- nothing to tables that are already there, and applying it twice is
-- harmless. What is added over the tutorial, for new installations:
--   * utf8mb4 with a case-insensitive collation (the tutorial's utf8 is
--     utf8mb3, also case-insensitive: lookups behave the same on both);
--   * UNIQUE on virtual_domains.name (a domain listed twice is a mistake);
--   * an index on virtual_aliases.source (every alias lookup uses it).
-- On an existing database the alias index is added below (safe: not
-- unique, no data can make it fail). The unique key on domain names is not
-- added to an existing table, since duplicate rows would make it fail; add
-- it by hand once `SELECT name, COUNT(*) FROM virtual_domains GROUP BY name
-- HAVING COUNT(*) > 1` returns nothing:
--   ALTER TABLE virtual_domains ADD UNIQUE KEY name (name);
-- Converting old utf8mb3 tables is optional and up to the admin:
--   ALTER TABLE virtual_users CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
--
-- Use: mariadb mailserver < sql/schema.sql

CREATE TABLE IF NOT EXISTS `virtual_domains` (
    `id` int(11) NOT NULL auto_increment,
    `name` varchar(50) NOT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY `name` (`name`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `virtual_users` (
    `id` int(11) NOT NULL auto_increment,
    `domain_id` int(11) NOT NULL,
    `password` varchar(255) NOT NULL,
    `email` varchar(100) NOT NULL,
    PRIMARY KEY (`id`),
    UNIQUE KEY `email` (`email`),
    FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `virtual_aliases` (
    `id` int(11) NOT NULL auto_increment,
    `domain_id` int(11) NOT NULL,
    `source` varchar(100) NOT NULL,
    `destination` varchar(100) NOT NULL,
    PRIMARY KEY (`id`),
    KEY `source` (`source`),
    FOREIGN KEY (domain_id) REFERENCES virtual_domains(id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- For a database created from the tutorial: the alias index (a no-op when
-- the table above was just created with it).
CREATE INDEX IF NOT EXISTS `source` ON `virtual_aliases` (`source`);
