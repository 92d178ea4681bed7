COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER match);
