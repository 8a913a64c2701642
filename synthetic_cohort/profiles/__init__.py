"""Generator profiles (TOML data files); a package so the files ship with the code."""
