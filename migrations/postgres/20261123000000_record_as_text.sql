-- twofactor: keep the record as JSON text. The store treats it as opaque, and JSONB made the
-- server parse 1.3 KB of JSON on every save and print it back on every load. Existing rows
-- keep their content (JSONB prints valid JSON); cast with `record::jsonb` in ad-hoc queries.
ALTER TABLE twofactor_records ALTER COLUMN record TYPE TEXT USING record::text;
