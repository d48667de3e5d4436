-- One earn, as an application would make it against PostgreSQL: one transaction that debits the
-- partner's budget only if it holds enough (and checks that it did), credits the member and
-- records the entry. pgbench variables: :partners, :members (set with -D).
\set a random(1, :partners)
\set member 1000000 + random(1, :members)
\set m 1
BEGIN;
-- \gset fails the transaction when no row was updated: the budget did not cover the amount.
UPDATE accounts SET balance = balance - :m WHERE id = :a AND balance >= :m RETURNING balance AS left_over \gset
UPDATE accounts SET balance = balance + :m WHERE id = :member;
INSERT INTO entries (actor, idem_key, kind, debit, credit, minutes, activity)
VALUES (:a, gen_random_uuid()::text, 'earn', :a, :member, :m, 'load test');
END;
