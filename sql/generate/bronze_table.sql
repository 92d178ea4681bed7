CREATE TABLE {{bronze}}.{table} (
{columns}
);
