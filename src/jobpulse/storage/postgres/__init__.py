"""What only PostgreSQL needs: its connections, writers and readers."""
