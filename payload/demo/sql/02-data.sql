-- Sample data for the demo appliance. Fixed timestamps: the same rows on every build.

INSERT INTO app.hosts (name, arch, memory_mb, added_at) VALUES
    ('node01.demo.invalid', 'x86_64', 65536, '2024-01-02 03:04:05+00'),
    ('node02.demo.invalid', 'x86_64', 65536, '2024-01-02 03:04:06+00'),
    ('node03.demo.invalid', 'aarch64', 32768, '2024-02-03 04:05:06+00');

INSERT INTO app.jobs (host_id, kind, state, payload, created_at)
SELECT 1 + (n % 3),
       (ARRAY['backup', 'update', 'reboot'])[1 + n % 3],
       CASE WHEN n % 4 = 0 THEN 'queued' ELSE 'done' END,
       jsonb_build_object('attempt', n % 2 + 1, 'note', 'sample job ' || n),
       timestamptz '2024-03-01 00:00:00+00' + n * interval '1 hour'
FROM generate_series(1, 40) AS n;

INSERT INTO app.settings (key, value) VALUES
    ('cluster.name', 'demo'),
    ('backup.keep', '7'),
    ('update.window', 'Sun 02:00-04:00');
