-- An INSERT naming an existing audit row id is refused outright (with recursive_triggers on,
-- REPLACE would also hit audit_no_delete; this makes the rule independent of that setting).
CREATE TRIGGER audit_no_overwrite BEFORE INSERT ON audit
WHEN NEW.id IS NOT NULL AND EXISTS (SELECT 1 FROM audit WHERE id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'the audit history is append-only');
END;
