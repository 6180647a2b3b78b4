"""What only SQLite needs: its write-ahead log's checkpoints and one `serve` per file."""
