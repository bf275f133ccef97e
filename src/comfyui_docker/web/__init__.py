"""The dashboard: FastAPI app factory, auth, API routes, pages."""
