"""Property and fuzz tests of the parsers that read what peers and files send us."""
