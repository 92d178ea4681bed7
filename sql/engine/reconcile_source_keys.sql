COPY (SELECT {keys} FROM {source_table} WHERE {in_chunk}) TO STDOUT
