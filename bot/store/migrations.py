"""Numbered schema migrations, one list per engine: SQLite's `PRAGMA user_version` and
PostgreSQL's `schema_version` table record how many are applied. Both lists make the same
tables, columns, constraints and indexes (tests/app/test_store.py compares them); PostgreSQL's
types are its own (BIGINT ids, DOUBLE PRECISION times), and its first migration is all of
SQLite's first four, which predate it. A new migration is added to both."""

SQLITE: list[str] = [
    # 1: users, the append-only ledger, generations, picker drafts.
    """
    CREATE TABLE users (
        id          INTEGER PRIMARY KEY,          -- Telegram user id
        username    TEXT,
        first_name  TEXT NOT NULL DEFAULT '',
        last_name   TEXT,
        language    TEXT,                         -- chosen in the bot; NULL = follow Telegram
        tg_language TEXT,                         -- what Telegram last said
        balance     INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
        banned      INTEGER NOT NULL DEFAULT 0,
        blocked     INTEGER NOT NULL DEFAULT 0,   -- the user blocked the bot
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL
    );
    CREATE INDEX users_username ON users (lower(username));

    CREATE TABLE generations (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id            INTEGER NOT NULL REFERENCES users (id),
        chat_id            INTEGER NOT NULL,
        request_message_id INTEGER,
        status_message_id  INTEGER,
        draft_id           INTEGER UNIQUE,
        kind               TEXT NOT NULL,
        model              TEXT NOT NULL,
        prompt             TEXT NOT NULL,
        options            TEXT NOT NULL,         -- JSON: the user's choices
        input              TEXT NOT NULL,         -- JSON: what Kie is sent
        price              INTEGER NOT NULL CHECK (price >= 0),
        task_id            TEXT UNIQUE,
        state              TEXT NOT NULL,         -- see store.models.GenerationState
        kie_state          TEXT,
        result_urls        TEXT,                  -- JSON list
        failure            TEXT,                  -- a reason code
        failure_detail     TEXT,                  -- what Kie said
        checks             INTEGER NOT NULL DEFAULT 0,
        next_check_at      REAL,
        deadline_at        REAL NOT NULL,
        created_at         REAL NOT NULL,
        submitted_at       REAL,
        finished_at        REAL,
        delivered_at       REAL
    );
    CREATE INDEX generations_open ON generations (state, next_check_at);
    CREATE INDEX generations_user ON generations (user_id, id);

    CREATE TABLE ledger (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id       INTEGER NOT NULL REFERENCES users (id),
        amount        INTEGER NOT NULL,
        balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
        kind          TEXT NOT NULL,
        generation_id INTEGER REFERENCES generations (id),
        admin_id      INTEGER,
        note          TEXT,
        created_at    REAL NOT NULL
    );
    CREATE INDEX ledger_user ON ledger (user_id, id);
    -- The rules "charged once, refunded once, granted once" are constraints, not hopes.
    CREATE UNIQUE INDEX ledger_one_charge ON ledger (generation_id) WHERE kind = 'charge';
    CREATE UNIQUE INDEX ledger_one_refund ON ledger (generation_id) WHERE kind = 'refund';
    CREATE UNIQUE INDEX ledger_one_grant ON ledger (user_id) WHERE kind = 'grant';
    CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
    CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
        BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;

    CREATE TABLE drafts (
        id                 INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id            INTEGER NOT NULL REFERENCES users (id),
        chat_id            INTEGER NOT NULL,
        request_message_id INTEGER,
        picker_message_id  INTEGER,
        kind               TEXT NOT NULL,
        prompt             TEXT NOT NULL,
        model              TEXT,
        options            TEXT NOT NULL DEFAULT '{}',
        state              TEXT NOT NULL DEFAULT 'open',   -- open | confirmed | cancelled
        created_at         REAL NOT NULL
    );
    """,
    # 2: hardening. Deliveries are scheduled like checks; a draft's revision is what its ✅
    # promised; a ledger row may name its source (a command message) once; repeated updates
    # and chats the bot lost are remembered.
    """
    ALTER TABLE generations ADD COLUMN deliveries INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE drafts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX drafts_created ON drafts (created_at);
    ALTER TABLE ledger ADD COLUMN source TEXT;
    CREATE UNIQUE INDEX ledger_one_source ON ledger (source) WHERE source IS NOT NULL;
    CREATE TABLE updates (
        id      INTEGER PRIMARY KEY,              -- Telegram update_id
        seen_at REAL NOT NULL
    );
    CREATE INDEX updates_seen ON updates (seen_at);
    CREATE TABLE chats (
        id          INTEGER PRIMARY KEY,          -- Telegram chat id
        unreachable INTEGER NOT NULL DEFAULT 0,   -- the bot was removed from it
        migrated_to INTEGER,                      -- a group upgraded to this supergroup
        updated_at  REAL NOT NULL
    );
    """,
    # 3: a picture as input: the Telegram file id of the photo a request was made from (the
    # file itself is fetched and handed to Kie only when the generation is paid for).
    """
    ALTER TABLE drafts ADD COLUMN picture TEXT;
    ALTER TABLE generations ADD COLUMN picture TEXT;
    """,
    # 4: accounts and payments. A Stars purchase is one row per Telegram charge id (its ledger
    # rows carry the id as their source, so each is credited and refunded at most once);
    # admins' price overrides and hidden models; named flags (e.g. an alert already sent).
    """
    CREATE TABLE purchases (
        charge_id   TEXT PRIMARY KEY,             -- telegram_payment_charge_id
        user_id     INTEGER NOT NULL REFERENCES users (id),
        package     TEXT NOT NULL,                -- the invoice payload
        credits     INTEGER NOT NULL CHECK (credits > 0),
        stars       INTEGER NOT NULL CHECK (stars > 0),
        created_at  REAL NOT NULL,
        refunded_at REAL,
        taken_back  INTEGER                       -- credits removed by the refund
    );
    CREATE INDEX purchases_user ON purchases (user_id, created_at);
    CREATE TABLE model_overrides (
        model      TEXT PRIMARY KEY,              -- the catalog's short id
        price      INTEGER CHECK (price IS NULL OR price >= 0),
        hidden_by  TEXT,                          -- NULL: offered; 'admin' or 'kie'
        updated_at REAL NOT NULL
    );
    CREATE TABLE flags (
        name       TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX generations_created ON generations (created_at);
    -- What Kie said of each result file (a track's title and length), for every delivery try.
    ALTER TABLE generations ADD COLUMN result_files TEXT;
    """,
    # 5: several instances. Each running bot records itself in `instances` and refreshes its
    # `seen_at`; a generation's `owner` is the instance doing something for it right now (its
    # create, a status read, its delivery), NULL between two such: if the owner goes, the
    # work passes to another.
    """
    CREATE TABLE instances (
        id         TEXT PRIMARY KEY,
        started_at REAL NOT NULL,
        seen_at    REAL NOT NULL
    );
    ALTER TABLE generations ADD COLUMN owner TEXT;
    -- What was open before: a past run's, to be taken over at the next start.
    UPDATE generations SET owner = '-' WHERE state IN ('pending', 'running', 'succeeded');
    """,
    # 6: a pool of Kie keys: the key (store: its fingerprint, kie.client.key_id) that created
    # a generation's task, through which alone its status and files can be read.
    """
    ALTER TABLE generations ADD COLUMN kie_key TEXT;
    """,
    # 7: a Stars refund holds the credits before Telegram is asked (taken_back set,
    # refunded_at not yet), and gives them back if Telegram refuses: each try is counted, so
    # that every try's ledger rows have sources of their own.
    """
    ALTER TABLE purchases ADD COLUMN refund_tries INTEGER NOT NULL DEFAULT 0;
    UPDATE purchases SET refund_tries = 1 WHERE taken_back IS NOT NULL;
    """,
    # 8: a person's pickers, newest first: what opening one more keeps (DRAFTS_PER_USER).
    """
    CREATE INDEX drafts_user ON drafts (user_id, id);
    """,
    # 9: the conversation. A person's last model and options per kind (a picker opens on
    # them); a text or photo waiting for its kind or its words (prompt first, a ForceReply
    # question); a picker whose ✅ the balance could not pay (offered again after a purchase).
    """
    CREATE TABLE choices (
        user_id    INTEGER NOT NULL REFERENCES users (id),
        kind       TEXT NOT NULL,
        model      TEXT NOT NULL,
        options    TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (user_id, kind)
    );
    CREATE TABLE prompts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id     INTEGER NOT NULL REFERENCES users (id),
        chat_id     INTEGER NOT NULL,
        message_id  INTEGER,          -- the person's message: the picker and result reply to it
        kind        TEXT,
        text        TEXT,
        picture     TEXT,
        question_id INTEGER,          -- the bot's ForceReply question, once asked
        created_at  REAL NOT NULL
    );
    CREATE INDEX prompts_user ON prompts (user_id, id);
    CREATE INDEX prompts_question ON prompts (chat_id, question_id);
    CREATE INDEX prompts_created ON prompts (created_at);
    ALTER TABLE drafts ADD COLUMN short_at REAL;
    """,
    # 10: history that lasts. The files Telegram holds of each delivered result (an album's in
    # its order), sent again by file_id: free, and long after Kie's links are gone.
    """
    CREATE TABLE delivered_files (
        generation_id INTEGER NOT NULL REFERENCES generations (id),
        position      INTEGER NOT NULL,           -- its place among the result's files
        kind          TEXT NOT NULL,              -- photo | video | audio | animation | document
        file_id       TEXT NOT NULL,
        PRIMARY KEY (generation_id, position)
    );
    """,
    # 11: growth. Invites: each person's invite code (made at their first /invite), who invited
    # them, and the update that registered them (only that update may bring an invite: someone
    # who had started before is nobody's invitee). `invited_by` names an older user but has no
    # foreign key, as `admin_id` has none: migrate-to copies users in id order, not age.
    # Promo codes, and who redeemed each: once per person (the key), at most `uses` in all (the
    # CHECK), both decided by the database however many redeem at once.
    """
    ALTER TABLE users ADD COLUMN invite_code TEXT;
    ALTER TABLE users ADD COLUMN invited_by INTEGER;
    ALTER TABLE users ADD COLUMN first_update INTEGER;
    CREATE UNIQUE INDEX users_invite_code ON users (invite_code);
    CREATE INDEX users_invited_by ON users (invited_by);
    CREATE TABLE promo_codes (
        code       TEXT PRIMARY KEY,              -- upper case: codes are case-insensitive
        credits    INTEGER NOT NULL CHECK (credits > 0),
        uses       INTEGER CHECK (uses IS NULL OR uses > 0),   -- NULL: no limit
        used       INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        expires_at REAL,                          -- NULL: no end
        off_at     REAL,                          -- turned off by an admin
        admin_id   INTEGER NOT NULL,              -- who made it
        created_at REAL NOT NULL,
        CHECK (uses IS NULL OR used <= uses)
    );
    CREATE TABLE promo_redemptions (
        code       TEXT NOT NULL REFERENCES promo_codes (code),
        user_id    INTEGER NOT NULL REFERENCES users (id),
        created_at REAL NOT NULL,
        PRIMARY KEY (code, user_id)
    );
    """,
    # 12: broadcasts. One row per ✅ pressed on a preview (the preview's message is its key: a
    # second press finds it), sent one at a time by the instance that owns it (`owner`, as a
    # generation's); its recipients fixed when it was made, each with its own state: `sending`
    # is written before the copy goes out, so a copy cut off by a crash is never sent again
    # (the next owner counts it `unknown`).
    """
    CREATE TABLE broadcasts (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        admin_id          INTEGER NOT NULL,       -- who pressed ✅: the report is theirs
        chat_id           INTEGER NOT NULL,       -- where the message copied is, and the preview
        message_id        INTEGER NOT NULL,       -- the message copied to everyone
        status_message_id INTEGER NOT NULL,       -- the preview, then the progress line
        audience          TEXT NOT NULL,          -- all | paying | active | en | ru
        state             TEXT NOT NULL CHECK (state IN ('sending', 'done', 'stopped')),
        owner             TEXT,                   -- the instance sending it now
        created_at        REAL NOT NULL,
        finished_at       REAL,
        reported_at       REAL,                   -- the report went out (or was on its way)
        UNIQUE (chat_id, status_message_id)
    );
    CREATE INDEX broadcasts_open ON broadcasts (id) WHERE reported_at IS NULL;
    CREATE TABLE broadcast_recipients (
        broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id),
        user_id      INTEGER NOT NULL REFERENCES users (id),
        state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN
                         ('pending', 'sending', 'sent', 'blocked', 'failed', 'unknown')),
        updated_at   REAL,
        PRIMARY KEY (broadcast_id, user_id)
    );
    CREATE INDEX broadcast_recipients_state ON broadcast_recipients (broadcast_id, state, user_id);
    """,
    # 13: the Kie.ai balance as the credit watch read it, per key (its fingerprint,
    # kie.client.key_id; never the key): /stats' Kie spend as Kie counts it (store/daily.py).
    """
    CREATE TABLE kie_readings (
        key_id  TEXT NOT NULL,
        read_at REAL NOT NULL,
        credits REAL NOT NULL,
        PRIMARY KEY (key_id, read_at)
    );
    CREATE INDEX kie_readings_read ON kie_readings (read_at);
    """,
    # 14: the web dashboard. One-time sign-in links (10 minutes) and sessions (12 hours),
    # each kept as the SHA-256 of its random token (a copy of the database opens nothing), with
    # the admin it belongs to; in the database, so every instance serves the same dashboard.
    """
    CREATE TABLE dashboard_links (
        token_hash TEXT PRIMARY KEY,
        admin_id   INTEGER NOT NULL,
        expires_at REAL NOT NULL,
        used_at    REAL                          -- spent on a session: never again
    );
    CREATE TABLE dashboard_sessions (
        id_hash    TEXT PRIMARY KEY,
        admin_id   INTEGER NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
    # 15: follow-ups. A generation made from another's result (⬆️ Upscale, ➕ Extend) names it.
    # No foreign key, as `invited_by` has none: migrate-to copies rows as they come.
    """
    ALTER TABLE generations ADD COLUMN source_id INTEGER;
    CREATE INDEX generations_source ON generations (source_id) WHERE source_id IS NOT NULL;
    """,
    # 16: ✨ Improve. One row per attempt to improve a picker draft's prompt, keyed by the draft
    # and its revision when ✨ was pressed (store/improvements.py): its charge and refund are
    # ledger rows named after that key; one attempt at a time runs per draft. No foreign key to
    # drafts: a draft trimmed away must not take a running attempt's charge with it.
    """
    CREATE TABLE improvements (
        draft_id    INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        user_id     INTEGER NOT NULL REFERENCES users (id),
        price       INTEGER NOT NULL CHECK (price >= 0),
        state       TEXT NOT NULL,         -- running | ready | failed | used | kept
        original    TEXT NOT NULL,
        improved    TEXT,
        failure     TEXT,
        created_at  REAL NOT NULL,
        finished_at REAL,
        PRIMARY KEY (draft_id, attempt)
    );
    CREATE UNIQUE INDEX improvements_one_running ON improvements (draft_id) WHERE state = 'running';
    CREATE INDEX improvements_created ON improvements (created_at);
    """,
]

POSTGRES: list[str] = [
    # 1: SQLite's 1-4.
    """
    CREATE TABLE users (
        id          BIGINT PRIMARY KEY,
        username    TEXT,
        first_name  TEXT NOT NULL DEFAULT '',
        last_name   TEXT,
        language    TEXT,
        tg_language TEXT,
        balance     BIGINT NOT NULL DEFAULT 0 CHECK (balance >= 0),
        banned      INTEGER NOT NULL DEFAULT 0,
        blocked     INTEGER NOT NULL DEFAULT 0,
        created_at  DOUBLE PRECISION NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX users_username ON users (lower(username));

    CREATE TABLE generations (
        id                 BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id            BIGINT NOT NULL REFERENCES users (id),
        chat_id            BIGINT NOT NULL,
        request_message_id BIGINT,
        status_message_id  BIGINT,
        draft_id           BIGINT UNIQUE,
        kind               TEXT NOT NULL,
        model              TEXT NOT NULL,
        prompt             TEXT NOT NULL,
        options            TEXT NOT NULL,
        input              TEXT NOT NULL,
        price              BIGINT NOT NULL CHECK (price >= 0),
        task_id            TEXT UNIQUE,
        state              TEXT NOT NULL,
        kie_state          TEXT,
        result_urls        TEXT,
        failure            TEXT,
        failure_detail     TEXT,
        checks             INTEGER NOT NULL DEFAULT 0,
        next_check_at      DOUBLE PRECISION,
        deadline_at        DOUBLE PRECISION NOT NULL,
        created_at         DOUBLE PRECISION NOT NULL,
        submitted_at       DOUBLE PRECISION,
        finished_at        DOUBLE PRECISION,
        delivered_at       DOUBLE PRECISION,
        deliveries         INTEGER NOT NULL DEFAULT 0,
        picture            TEXT,
        result_files       TEXT
    );
    CREATE INDEX generations_open ON generations (state, next_check_at);
    CREATE INDEX generations_user ON generations (user_id, id);
    CREATE INDEX generations_created ON generations (created_at);

    CREATE TABLE ledger (
        id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id       BIGINT NOT NULL REFERENCES users (id),
        amount        BIGINT NOT NULL,
        balance_after BIGINT NOT NULL CHECK (balance_after >= 0),
        kind          TEXT NOT NULL,
        generation_id BIGINT REFERENCES generations (id),
        admin_id      BIGINT,
        note          TEXT,
        created_at    DOUBLE PRECISION NOT NULL,
        source        TEXT
    );
    CREATE INDEX ledger_user ON ledger (user_id, id);
    CREATE UNIQUE INDEX ledger_one_charge ON ledger (generation_id) WHERE kind = 'charge';
    CREATE UNIQUE INDEX ledger_one_refund ON ledger (generation_id) WHERE kind = 'refund';
    CREATE UNIQUE INDEX ledger_one_grant ON ledger (user_id) WHERE kind = 'grant';
    CREATE UNIQUE INDEX ledger_one_source ON ledger (source) WHERE source IS NOT NULL;
    CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'ledger is append-only' USING ERRCODE = 'integrity_constraint_violation'; END
    $$;
    CREATE TRIGGER ledger_no_change BEFORE UPDATE OR DELETE ON ledger
        FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
    CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

    CREATE TABLE drafts (
        id                 BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id            BIGINT NOT NULL REFERENCES users (id),
        chat_id            BIGINT NOT NULL,
        request_message_id BIGINT,
        picker_message_id  BIGINT,
        kind               TEXT NOT NULL,
        prompt             TEXT NOT NULL,
        model              TEXT,
        options            TEXT NOT NULL DEFAULT '{}',
        state              TEXT NOT NULL DEFAULT 'open',
        created_at         DOUBLE PRECISION NOT NULL,
        revision           INTEGER NOT NULL DEFAULT 0,
        picture            TEXT
    );
    CREATE INDEX drafts_created ON drafts (created_at);

    CREATE TABLE updates (
        id      BIGINT PRIMARY KEY,
        seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX updates_seen ON updates (seen_at);
    CREATE TABLE chats (
        id          BIGINT PRIMARY KEY,
        unreachable INTEGER NOT NULL DEFAULT 0,
        migrated_to BIGINT,
        updated_at  DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE purchases (
        charge_id   TEXT PRIMARY KEY,
        user_id     BIGINT NOT NULL REFERENCES users (id),
        package     TEXT NOT NULL,
        credits     BIGINT NOT NULL CHECK (credits > 0),
        stars       BIGINT NOT NULL CHECK (stars > 0),
        created_at  DOUBLE PRECISION NOT NULL,
        refunded_at DOUBLE PRECISION,
        taken_back  BIGINT
    );
    CREATE INDEX purchases_user ON purchases (user_id, created_at);
    CREATE TABLE model_overrides (
        model      TEXT PRIMARY KEY,
        price      BIGINT CHECK (price IS NULL OR price >= 0),
        hidden_by  TEXT,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE flags (
        name       TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 2: SQLite's 5.
    """
    CREATE TABLE instances (
        id         TEXT PRIMARY KEY,
        started_at DOUBLE PRECISION NOT NULL,
        seen_at    DOUBLE PRECISION NOT NULL
    );
    ALTER TABLE generations ADD COLUMN owner TEXT;
    -- What was open before: a past run's, to be taken over at the next start.
    UPDATE generations SET owner = '-' WHERE state IN ('pending', 'running', 'succeeded');
    """,
    # 3: SQLite's 6.
    """
    ALTER TABLE generations ADD COLUMN kie_key TEXT;
    """,
    # 4: SQLite's 7.
    """
    ALTER TABLE purchases ADD COLUMN refund_tries INTEGER NOT NULL DEFAULT 0;
    UPDATE purchases SET refund_tries = 1 WHERE taken_back IS NOT NULL;
    """,
    # 5: SQLite's 8.
    """
    CREATE INDEX drafts_user ON drafts (user_id, id);
    """,
    # 6: SQLite's 9.
    """
    CREATE TABLE choices (
        user_id    BIGINT NOT NULL REFERENCES users (id),
        kind       TEXT NOT NULL,
        model      TEXT NOT NULL,
        options    TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (user_id, kind)
    );
    CREATE TABLE prompts (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        user_id     BIGINT NOT NULL REFERENCES users (id),
        chat_id     BIGINT NOT NULL,
        message_id  BIGINT,
        kind        TEXT,
        text        TEXT,
        picture     TEXT,
        question_id BIGINT,
        created_at  DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX prompts_user ON prompts (user_id, id);
    CREATE INDEX prompts_question ON prompts (chat_id, question_id);
    CREATE INDEX prompts_created ON prompts (created_at);
    ALTER TABLE drafts ADD COLUMN short_at DOUBLE PRECISION;
    """,
    # 7: SQLite's 10.
    """
    CREATE TABLE delivered_files (
        generation_id BIGINT NOT NULL REFERENCES generations (id),
        position      INTEGER NOT NULL,
        kind          TEXT NOT NULL,
        file_id       TEXT NOT NULL,
        PRIMARY KEY (generation_id, position)
    );
    """,
    # 8: SQLite's 11.
    """
    ALTER TABLE users ADD COLUMN invite_code TEXT;
    ALTER TABLE users ADD COLUMN invited_by BIGINT;
    ALTER TABLE users ADD COLUMN first_update BIGINT;
    CREATE UNIQUE INDEX users_invite_code ON users (invite_code);
    CREATE INDEX users_invited_by ON users (invited_by);
    CREATE TABLE promo_codes (
        code       TEXT PRIMARY KEY,
        credits    BIGINT NOT NULL CHECK (credits > 0),
        uses       BIGINT CHECK (uses IS NULL OR uses > 0),
        used       BIGINT NOT NULL DEFAULT 0 CHECK (used >= 0),
        expires_at DOUBLE PRECISION,
        off_at     DOUBLE PRECISION,
        admin_id   BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        CHECK (uses IS NULL OR used <= uses)
    );
    CREATE TABLE promo_redemptions (
        code       TEXT NOT NULL REFERENCES promo_codes (code),
        user_id    BIGINT NOT NULL REFERENCES users (id),
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (code, user_id)
    );
    """,
    # 9: SQLite's 12.
    """
    CREATE TABLE broadcasts (
        id                BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        admin_id          BIGINT NOT NULL,
        chat_id           BIGINT NOT NULL,
        message_id        BIGINT NOT NULL,
        status_message_id BIGINT NOT NULL,
        audience          TEXT NOT NULL,
        state             TEXT NOT NULL CHECK (state IN ('sending', 'done', 'stopped')),
        owner             TEXT,
        created_at        DOUBLE PRECISION NOT NULL,
        finished_at       DOUBLE PRECISION,
        reported_at       DOUBLE PRECISION,
        UNIQUE (chat_id, status_message_id)
    );
    CREATE INDEX broadcasts_open ON broadcasts (id) WHERE reported_at IS NULL;
    CREATE TABLE broadcast_recipients (
        broadcast_id BIGINT NOT NULL REFERENCES broadcasts (id),
        user_id      BIGINT NOT NULL REFERENCES users (id),
        state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN
                         ('pending', 'sending', 'sent', 'blocked', 'failed', 'unknown')),
        updated_at   DOUBLE PRECISION,
        PRIMARY KEY (broadcast_id, user_id)
    );
    CREATE INDEX broadcast_recipients_state ON broadcast_recipients (broadcast_id, state, user_id);
    """,
    # 10: SQLite's 13.
    """
    CREATE TABLE kie_readings (
        key_id  TEXT NOT NULL,
        read_at DOUBLE PRECISION NOT NULL,
        credits DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (key_id, read_at)
    );
    CREATE INDEX kie_readings_read ON kie_readings (read_at);
    """,
    # 11: SQLite's 14.
    """
    CREATE TABLE dashboard_links (
        token_hash TEXT PRIMARY KEY,
        admin_id   BIGINT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        used_at    DOUBLE PRECISION
    );
    CREATE TABLE dashboard_sessions (
        id_hash    TEXT PRIMARY KEY,
        admin_id   BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 12: SQLite's 15.
    """
    ALTER TABLE generations ADD COLUMN source_id BIGINT;
    CREATE INDEX generations_source ON generations (source_id) WHERE source_id IS NOT NULL;
    """,
    # 13: SQLite's 16.
    """
    CREATE TABLE improvements (
        draft_id    BIGINT NOT NULL,
        attempt     BIGINT NOT NULL,
        user_id     BIGINT NOT NULL REFERENCES users (id),
        price       BIGINT NOT NULL CHECK (price >= 0),
        state       TEXT NOT NULL,
        original    TEXT NOT NULL,
        improved    TEXT,
        failure     TEXT,
        created_at  DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        PRIMARY KEY (draft_id, attempt)
    );
    CREATE UNIQUE INDEX improvements_one_running ON improvements (draft_id) WHERE state = 'running';
    CREATE INDEX improvements_created ON improvements (created_at);
    """,
]
