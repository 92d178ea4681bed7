-- One worker per pipeline table at a time, across processes and machines: a second
-- parent run of the same pipeline skips the table instead of racing on its parts.
SELECT pg_try_advisory_lock(hashtext(%(key)s));
