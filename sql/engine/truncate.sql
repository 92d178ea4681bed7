TRUNCATE {target};
