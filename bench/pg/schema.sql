-- The same data as a timecredits earn touches: accounts with a balance, and an append-only
-- table of entries with a unique idempotency key per actor (timecredits keeps that index too).
-- psql variables: :partners budget accounts (ids 1..partners) and :members member accounts
-- (ids 1000001..1000000+members).
CREATE TABLE accounts (
    id      bigint PRIMARY KEY,
    kind    text   NOT NULL,
    balance bigint NOT NULL
);

CREATE TABLE entries (
    seq       bigserial   PRIMARY KEY,
    id        uuid        NOT NULL DEFAULT gen_random_uuid(),
    recorded  timestamptz NOT NULL DEFAULT now(),
    actor     bigint      NOT NULL,
    idem_key  text        NOT NULL,
    kind      text        NOT NULL,
    debit     bigint      NOT NULL REFERENCES accounts (id),
    credit    bigint      NOT NULL REFERENCES accounts (id),
    minutes   bigint      NOT NULL CHECK (minutes > 0),
    effective date        NOT NULL DEFAULT current_date,
    activity  text,
    UNIQUE (actor, idem_key)
);

-- Budgets start with the same allocation the load generator makes: 1,000,000 credits.
INSERT INTO accounts (id, kind, balance)
SELECT g, 'budget', 60000000 FROM generate_series(1, :partners) AS g;
INSERT INTO accounts (id, kind, balance)
SELECT 1000000 + g, 'member', 0 FROM generate_series(1, :members) AS g;

VACUUM ANALYZE;
