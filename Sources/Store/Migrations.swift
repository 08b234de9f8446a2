import GRDB

/// The schema, as an ordered list of migrations. Never edit a released migration:
/// append a new one (GRDB records applied identifiers in `grdb_migrations`).
enum StoreMigrations {
    static let latestIdentifier = "v10-webrtc-secret"

    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-runtime-settings") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta (
                        key   TEXT PRIMARY KEY NOT NULL,
                        value TEXT NOT NULL
                    );
                    CREATE TABLE turn_settings (
                        id                          INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
                        shared_secret               TEXT NOT NULL CHECK (length(shared_secret) > 0),
                        previous_shared_secret      TEXT,
                        previous_secret_retires_at  REAL,
                        credential_ttl              INTEGER NOT NULL CHECK (credential_ttl > 0),
                        relay_addresses             TEXT NOT NULL DEFAULT '[]',
                        external_addresses          TEXT NOT NULL DEFAULT '[]',
                        updated_at                  REAL NOT NULL
                    );
                    CREATE TABLE oauth_clients (
                        client_id               TEXT PRIMARY KEY NOT NULL CHECK (length(client_id) > 0),
                        secret_salt             BLOB NOT NULL,
                        secret_hash             BLOB NOT NULL,
                        token_validity_minutes  INTEGER NOT NULL DEFAULT 20 CHECK (token_validity_minutes >= 0),
                        created_at              REAL NOT NULL,
                        updated_at              REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v2-extensions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE extensions (
                        extension        TEXT PRIMARY KEY NOT NULL CHECK (length(extension) BETWEEN 1 AND 64),
                        authentication   TEXT NOT NULL CHECK (authentication IN ('digest', 'none')),
                        digest_username  TEXT NOT NULL DEFAULT '',
                        digest_password  TEXT NOT NULL DEFAULT '',
                        realm            TEXT NOT NULL DEFAULT '',
                        created_at       REAL NOT NULL,
                        updated_at       REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v3-token-signing-keys") { db in
            try db.execute(
                sql: """
                    CREATE TABLE token_signing_keys (
                        kid         TEXT PRIMARY KEY NOT NULL,
                        algorithm   TEXT NOT NULL CHECK (algorithm IN ('HS256')),
                        secret      BLOB NOT NULL CHECK (length(secret) >= 32),
                        created_at  REAL NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("v4-sessions") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sessions (
                        id          TEXT PRIMARY KEY NOT NULL,
                        token_hash  BLOB NOT NULL UNIQUE,
                        extension   TEXT UNIQUE REFERENCES extensions(extension) ON DELETE CASCADE,
                        client_id   TEXT NOT NULL,
                        created_at  REAL NOT NULL,
                        expires_at  REAL NOT NULL
                    );
                    """)
        }
        // Click-to-contact: the services guests may call, and guest sessions (no extension).
        migrator.registerMigration("v5-services") { db in
            try db.execute(
                sql: """
                    CREATE TABLE services (
                        key           TEXT PRIMARY KEY NOT NULL CHECK (length(key) BETWEEN 1 AND 64),
                        number        TEXT NOT NULL CHECK (length(number) BETWEEN 1 AND 64),
                        display_name  TEXT NOT NULL DEFAULT ''
                    );
                    ALTER TABLE sessions ADD COLUMN guest_from TEXT;
                    ALTER TABLE sessions ADD COLUMN guest_service TEXT REFERENCES services(key) ON DELETE CASCADE;
                    """)
        }
        // The administrators of /cms, their browser sessions, and the audit log of what they did.
        migrator.registerMigration("v6-admin") { db in
            try db.execute(
                sql: """
                    CREATE TABLE admin_accounts (
                        name                 TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
                        password_hash        TEXT NOT NULL CHECK (length(password_hash) > 0),
                        created_at           REAL NOT NULL,
                        password_changed_at  REAL NOT NULL
                    );
                    CREATE TABLE admin_sessions (
                        token_hash    BLOB PRIMARY KEY NOT NULL,
                        account       TEXT NOT NULL REFERENCES admin_accounts(name) ON DELETE CASCADE,
                        csrf_token    TEXT NOT NULL,
                        source        TEXT NOT NULL DEFAULT '',
                        created_at    REAL NOT NULL,
                        last_seen_at  REAL NOT NULL
                    );
                    CREATE TABLE audit_log (
                        id       INTEGER PRIMARY KEY AUTOINCREMENT,
                        at       REAL NOT NULL,
                        account  TEXT,
                        source   TEXT NOT NULL DEFAULT '',
                        action   TEXT NOT NULL,
                        detail   TEXT NOT NULL DEFAULT ''
                    );
                    CREATE INDEX audit_log_at ON audit_log(at);
                    """)
        }
        // The SIP platform set from /cms; no row: the configuration file's sip.* keys apply.
        migrator.registerMigration("v7-sip-platform") { db in
            try db.execute(
                sql: """
                    CREATE TABLE sip_platform (
                        id                     INTEGER PRIMARY KEY CHECK (id = 1),
                        platform_primary       TEXT NOT NULL,
                        platform_secondary     TEXT NOT NULL DEFAULT '',
                        platform_transport     TEXT NOT NULL CHECK (platform_transport IN ('udp', 'tcp', 'tls')),
                        outbound_proxy         TEXT NOT NULL DEFAULT '',
                        domain                 TEXT NOT NULL DEFAULT '',
                        registration_expires   INTEGER NOT NULL CHECK (registration_expires BETWEEN 300 AND 86400),
                        keep_alive_interval    INTEGER NOT NULL CHECK (keep_alive_interval BETWEEN 0 AND 3600),
                        updated_at             REAL NOT NULL
                    );
                    """)
        }
        // The payload settings set from /cms (SIP-leg SRTP, G.711 laws); no row: the file's.
        migrator.registerMigration("v8-payload") { db in
            try db.execute(
                sql: """
                    CREATE TABLE payload_settings (
                        id            INTEGER PRIMARY KEY CHECK (id = 1),
                        srtp_mode     TEXT NOT NULL CHECK (srtp_mode IN ('off', 'preferred', 'required')),
                        audio_codecs  TEXT NOT NULL,
                        updated_at    REAL NOT NULL
                    );
                    """)
        }
        // Opus joins the audio codecs (no schema change); the video codecs and their order.
        migrator.registerMigration("v9-payload-video") { db in
            try db.execute(sql: "ALTER TABLE payload_settings ADD COLUMN video_codecs TEXT NOT NULL DEFAULT 'vp8'")
        }
        // A client's WebRTC secret (SignedSessionToken); NULL: off. Kept as is: HMAC needs it.
        migrator.registerMigration("v10-webrtc-secret") { db in
            try db.execute(sql: "ALTER TABLE oauth_clients ADD COLUMN webrtc_secret TEXT")
        }
        return migrator
    }()
}

/// The `meta` key/value table.
enum Meta {
    /// Set once, when the first-start seed was written.
    static let seededAtKey = "seeded-at"

    static func value(_ db: Database, key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    static func setValue(_ db: Database, key: String, value: String?) throws {
        if let value {
            try db.execute(
                sql: "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                arguments: [key, value])
        } else {
            try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [key])
        }
    }
}
