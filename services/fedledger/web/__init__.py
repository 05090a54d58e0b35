"""What the services share: signed requests between org services, error responses,
running an app on a loopback port, and database set-up with Alembic."""
