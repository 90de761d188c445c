"""The archive service (issue 12): its database on SQLite and PostgreSQL, and its workers."""
